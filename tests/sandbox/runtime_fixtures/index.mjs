// A Node.js handler (index.handler) for the sandbox's runtime tests.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

export const handler = async (event, context) => {
  if (event.action === "throw") {
    throw new TypeError("boom from node");
  }
  if (event.action === "sleep") {
    await new Promise((resolve) => setTimeout(resolve, event.ms));
  }
  if (event.action === "env") {
    const python = spawnSync("python3", ["-c", "print(1)"]);
    return {
      env: process.env, execArgv: process.execArgv, execPath: process.execPath, version: process.version,
      pythonSpawn: python.error ? python.error.code : `exit ${python.status}`,
      hostPython: existsSync("/usr/bin/python3"), hostNode: existsSync("/usr/bin/node"),
      cwd: process.cwd(), uid: process.getuid(),
    };
  }
  console.log(`hello from node ${context.awsRequestId}`);
  return { ok: true, requestId: context.awsRequestId, remainingMs: context.getRemainingTimeInMillis() };
};
