"""The local devnet (``tkms devnet``, what ``make devnet`` runs).

    keys        dev keys in ``state/keys`` (0600 files, 0700 directory)
    manifest    ``DevnetManifest``: the one writer and reader of ``devnet.json``
    processes   start a service process, wait until healthy, stop it, free ports
    threshold   n nodes and their DKG ceremony
    single      ``--nodes 1``: one nox-compatible node holding the whole key
    gateway     the Handle Gateway in front of the nodes, and the dev users
    control     a running devnet: its lock, and stop/restart of one process
    run         ``run_devnet``: checks, starts, prints, supervises
    demo        ``tkms delegate --devnet``: the threshold flow without the gateway

Nothing is imported here, so that ``tkms.devnet.manifest`` (read by the SDK)
stays a leaf.
"""
