// A stock grpc-js-xds client, run as its own process by the xDS tests (node, with NODE_PATH at
// the packages `make system-node-xds` installs).
//
//     node tests/support/xds_client.js TARGET
//
// Calls /test.Backend/Name on TARGET (an xds:/// target, bootstrap from GRPC_XDS_BOOTSTRAP)
// every 10 ms and prints one line per call: `pick <backend name>` or `error <code>`. It stops
// when stdin closes.
"use strict";
const grpc = require("@grpc/grpc-js");
require("@grpc/grpc-js-xds").register();

const target = process.argv[2];
const client = new grpc.Client(target, grpc.credentials.createInsecure());
const same = (buffer) => buffer;
let stopped = false;
process.stdin.on("end", () => { stopped = true; });
process.stdin.resume();

function call() {
  if (stopped) {
    client.close();
    process.exit(0);
  }
  const deadline = new Date(Date.now() + 2000);
  client.makeUnaryRequest("/test.Backend/Name", same, same, Buffer.alloc(0), { deadline },
    (err, answer) => {
      if (err) {
        process.stdout.write(`error ${grpc.status[err.code]}\n`);
        setTimeout(call, 50);
      } else {
        process.stdout.write(`pick ${answer.toString()}\n`);
        setTimeout(call, 10);
      }
    });
}
call();
