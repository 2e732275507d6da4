// Runs a wasm32-wasip1 program under Node's WASI. The filter library inside it also declares
// proxy-wasm host functions, which this program never calls: they are stubbed so it links.
const { WASI } = require("node:wasi");
const fs = require("node:fs");

const program = new WebAssembly.Module(fs.readFileSync(process.argv[2]));
const wasi = new WASI({ version: "preview1" });
const imports = wasi.getImportObject();
for (const entry of WebAssembly.Module.imports(program)) {
  if (entry.module !== "wasi_snapshot_preview1") {
    imports[entry.module] ??= {};
    imports[entry.module][entry.name] = () => {
      throw new Error(`host function ${entry.name} is not available here`);
    };
  }
}
const instance = new WebAssembly.Instance(program, imports);
// The library exports `_initialize` too, which WASI.start refuses next to `_start`.
wasi.start({ exports: { memory: instance.exports.memory, _start: instance.exports._start } });
