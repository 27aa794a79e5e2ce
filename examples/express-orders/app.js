// The orders API: an Express app protected by @keyplane/sdk's middleware. GET /orders needs a key
// with orders:read, POST /orders one with orders:write; each workspace (each platform customer)
// sees only its own orders. The handlers read who is calling from req.keyplane.
"use strict";
const express = require("express");
const { expressMiddleware } = require("@keyplane/sdk");

/** createApp builds the API around a Verifier; log gets the errors met while verifying. */
function createApp({ verifier, log = console }) {
  const onError = (err, req) => log.warn(`keyplane could not verify a key for ${req.method} ${req.path}: ${err.message}`);
  const read = expressMiddleware(verifier, { permissions: ["orders:read"], onError });
  const write = expressMiddleware(verifier, { permissions: ["orders:write"], onError });

  let next = 0;
  const orders = new Map(); // workspace id → orders
  const app = express();
  app.disable("x-powered-by");

  app.get("/orders", read, (req, res) => {
    const caller = req.keyplane;
    res.json({ orders: orders.get(caller.workspaceId) ?? [], keyId: caller.keyId, environment: caller.environment });
  });

  app.post("/orders", write, express.json({ limit: "4kb" }), (req, res) => {
    const caller = req.keyplane;
    const item = req.body?.item;
    if (typeof item !== "string" || item === "") {
      return res.status(400).json({ error: { code: "invalid_request", message: 'send {"item": "…"}' } });
    }
    const order = { id: ++next, item, createdBy: caller.keyId, createdAt: new Date().toISOString() };
    orders.set(caller.workspaceId, [...(orders.get(caller.workspaceId) ?? []), order]);
    res.status(201).json(order);
  });

  // A malformed JSON body is the client's mistake, not a 500.
  app.use((err, req, res, _next) => {
    const status = err.status >= 400 && err.status < 500 ? err.status : 500;
    if (status === 500) log.error(err);
    res.status(status).json({ error: { code: status === 500 ? "internal" : "invalid_request", message: status === 500 ? "internal error" : "malformed request" } });
  });
  return app;
}

module.exports = { createApp };
