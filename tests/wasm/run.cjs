// Runs a wasm32-wasip1 test program (cargo's unit-test binary of the library) under Node's WASI,
// so the scanner's vector code runs as real wasm SIMD instructions, not the native stand-in.
// Usage: node run.cjs PROGRAM.wasm [test-harness arguments...]
const { WASI } = require("node:wasi");
const fs = require("node:fs");

const [program, ...args] = process.argv.slice(2);
const compiled = new WebAssembly.Module(fs.readFileSync(program));
const wasi = new WASI({ version: "preview1", args: [program, ...args], returnOnExit: true });
const imports = wasi.getImportObject();
// The library also imports proxy-wasm host functions, which the unit tests never call.
for (const entry of WebAssembly.Module.imports(compiled)) {
  if (entry.module !== "wasi_snapshot_preview1") {
    imports[entry.module] ??= {};
    imports[entry.module][entry.name] = () => {
      throw new Error(`host function ${entry.name} is not available in unit tests`);
    };
  }
}
const instance = new WebAssembly.Instance(compiled, imports);
const entry = { memory: instance.exports.memory, _start: instance.exports._start };
process.exitCode = wasi.start({ exports: entry });
