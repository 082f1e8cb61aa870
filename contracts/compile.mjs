// Compiles contracts/*.sol with the pinned solc-js (package-lock.json) and writes one
// artifact per deployable contract: src/tkms/chain/artifacts/<Name>.json (abi, bytecode).
// The artifacts are committed so that Python needs no Node.js at run time; a test runs
// this script into a scratch folder and compares the files byte for byte.
//
//   node contracts/compile.mjs [--out DIR]      (default: src/tkms/chain/artifacts)
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const contractsDir = join(root, "contracts");
const args = process.argv.slice(2);
const outIndex = args.indexOf("--out");
const outDir = outIndex >= 0 ? args[outIndex + 1] : join(root, "src", "tkms", "chain", "artifacts");

// Pinned settings: part of every artifact, so that a change shows in the check.
const settings = {
  evmVersion: "cancun", // transient storage (EIP-1153); every later fork runs it too
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const sources = {};
for (const name of readdirSync(contractsDir).filter((f) => f.endsWith(".sol")).sort()) {
  const path = join(contractsDir, name);
  sources[relative(root, path)] = { content: readFileSync(path, "utf8") };
}

const output = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings })));
// Warnings fail too, but one: 2394 warns that transient storage outlives the call frame,
// and lasting until the end of the transaction is what NoxCompute's transient access means.
const EXPECTED_WARNINGS = new Set(["2394"]);
const problems = (output.errors ?? []).filter(
  (p) => !(p.severity === "warning" && EXPECTED_WARNINGS.has(p.errorCode)),
);
for (const problem of problems) process.stderr.write(problem.formattedMessage + "\n");
if (problems.length > 0) {
  process.stderr.write(`solc: ${problems.length} error(s) or warning(s)\n`);
  process.exit(1);
}

mkdirSync(outDir, { recursive: true });
const written = [];
for (const [sourceName, contracts] of Object.entries(output.contracts)) {
  for (const [contractName, out] of Object.entries(contracts)) {
    const bytecode = out.evm.bytecode.object;
    if (bytecode.length === 0) continue; // interfaces
    const artifact = {
      contractName,
      sourceName,
      compiler: { name: "solc-js", version: solc.version(), settings: { ...settings, outputSelection: undefined } },
      abi: out.abi,
      bytecode: "0x" + bytecode,
      deployedBytecode: "0x" + out.evm.deployedBytecode.object,
    };
    writeFileSync(join(outDir, `${contractName}.json`), JSON.stringify(artifact, null, 2) + "\n");
    written.push(contractName);
  }
}
process.stdout.write(`compiled ${written.sort().join(", ")} with solc ${solc.version()}\n`);
