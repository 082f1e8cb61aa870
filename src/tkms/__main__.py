from tkms.cli import main

main()
