// Proof bundle verification in the browser, written from docs/proof-format.md: RFC 8785 (JCS)
// leaf bytes, RFC 9162 inclusion, the publisher identity the user pins (§14), and the anchor
// read from a chain node the user names (eth_call, §8), not from the serving host. SHA-256 and
// Ed25519 are WebCrypto's. No dependencies.
//
// Verdicts (§15): VERIFIED only when every link up to the anchor on the pinned registry was
// checked; NOT VERIFIED when a link failed (named); INCOMPLETE when something could not be
// checked (no pinned identity, no RPC URL): never a pass for something unchecked.
"use strict";

const RDA = (() => {
  const utf8 = new TextEncoder();
  const VERIFIED = "VERIFIED", NOT_VERIFIED = "NOT VERIFIED", INCOMPLETE = "INCOMPLETE";
  // First 4 bytes of Keccak-256 of each signature (tests/test_market_web_trust.py checks them).
  const SELECTORS = {
    getAnchor: "6a9fc0b2", // getAnchor(bytes32,uint64)
    registryVersion: "0f9be51c", // registryVersion()
    owner: "8da5cb5b", // owner()
    identityHash: "212ff20a", // identityHash()
    identityDocument: "841ffec7", // identityDocument()
  };
  // The AnchorRegistry's code as compiled (proofs/contracts/AnchorRegistry.json, deployedBytecode)
  // with its one immutable, the owner, as zeros at the places its immutableReferences list: a
  // registry's answers prove nothing unless its code is this (§14; tests/test_market_web_trust.py
  // checks these against the artifact).
  const REGISTRY_CODE = {
    bytes: 3572,
    ownerAt: [609, 778, 1143, 1612],
    sha256: "e47037dcd14bfe8a8bfbf7a00dbbadc74e7446bd33ce8fbaa738fc554e599804",
  };

  async function registryCodeProblem(codeHex, owner) {
    const code = hexToBytes(codeHex.replace(/^0x/, ""));
    const ownerWord = owner.slice(2).toLowerCase().padStart(64, "0");
    const ownerInPlace = REGISTRY_CODE.ownerAt.every((at) => bytesToHex(code.slice(at, at + 32)) === ownerWord);
    if (code.length === REGISTRY_CODE.bytes && ownerInPlace) {
      for (const at of REGISTRY_CODE.ownerAt) code.fill(0, at, at + 32);
      if (bytesToHex(await sha256(code)) === REGISTRY_CODE.sha256) return null;
    }
    return "its code (" + code.length + " bytes) is not the AnchorRegistry's deployed by " + owner + ": what it says of anchors proves nothing";
  }

  // RFC 8785: JSON.stringify already writes strings and numbers the way JCS requires;
  // members are sorted by UTF-16 code units, which is what Array.prototype.sort compares.
  function canonicalize(value) {
    if (value === null || typeof value === "boolean") return JSON.stringify(value);
    if (typeof value === "number") {
      if (!Number.isFinite(value)) throw new Error("NaN and infinities are not JSON");
      return JSON.stringify(value);
    }
    if (typeof value === "string") {
      if (/\p{Surrogate}/u.test(value)) throw new Error("unpaired surrogate in a string");
      return JSON.stringify(value);
    }
    if (Array.isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
    if (typeof value === "object") {
      return "{" + Object.keys(value).sort()
        .map((k) => JSON.stringify(k) + ":" + canonicalize(value[k])).join(",") + "}";
    }
    throw new Error("unsupported JSON value: " + typeof value);
  }

  function hexToBytes(hex) {
    if (typeof hex !== "string" || !/^([0-9a-f]{2})*$/i.test(hex)) throw new Error("not hex: " + hex);
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function bytesToHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function sha256(...parts) {
    const total = parts.reduce((n, p) => n + p.length, 0);
    const data = new Uint8Array(total);
    let at = 0;
    for (const p of parts) { data.set(p, at); at += p.length; }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  }

  const leafHash = (bytes) => sha256(Uint8Array.of(0), bytes);
  const nodeHash = (left, right) => sha256(Uint8Array.of(1), left, right);
  const isHash = (v) => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
  const isCount = (v) => Number.isSafeInteger(v) && v >= 0;
  const isAddress = (v) => typeof v === "string" && /^0x[0-9a-fA-F]{40}$/.test(v);
  const check = (name, ok, detail) => ({ check: name, ok, detail });

  // RFC 9162 section 2.1.3.2; returns the computed root, or null when the path is malformed.
  async function rootFromInclusion(hash, index, size, proof) {
    if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size)) || index < 0 || index >= size) return null;
    let fn = index, sn = size - 1, r = hash;
    for (const p of proof) {
      if (p.length !== 32 || sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // -- the bundle itself (§10): shape, leaf, inclusion ------------------------------------------

  async function shapeProblem(b) {
    if (!b || typeof b !== "object" || Array.isArray(b)) return "a bundle must be a JSON object";
    if (b.bundle_version !== 1 && b.bundle_version !== 2) return "bundle_version must be 1 or 2";
    const cp = b.checkpoint;
    if (!cp || typeof cp !== "object") return "checkpoint must be an object";
    if (typeof b.dataset !== "string" || !b.dataset || typeof cp.log !== "string" || !cp.log) return "dataset and checkpoint.log must be non-empty strings";
    if (b.bundle_version === 2) {
      const problem = shardShapeProblem(b);
      if (problem) return problem;
    } else {
      if (b.log !== undefined && b.log !== cp.log) return "log must be checkpoint.log";
      if (cp.log !== b.dataset && !cp.log.startsWith(b.dataset + "/")) return "checkpoint.log must be the dataset id, or a shard of it";
    }
    if (!isCount(b.leaf_index) || !isCount(cp.tree_size)) return "leaf_index and checkpoint.tree_size must be non-negative integers";
    if (!b.row || typeof b.row !== "object" || Array.isArray(b.row)) return "row must be a JSON object";
    if (!Array.isArray(b.audit_path)) return "audit_path must be a list of hashes";
    for (const [k, v] of [["leaf_hash", b.leaf_hash], ["checkpoint.root", cp.root], ["checkpoint.manifest_sha256", cp.manifest_sha256], ...b.audit_path.map((h, i) => ["audit_path[" + i + "]", h])]) {
      if (!isHash(v)) return k + " must be 64 lowercase hex digits";
    }
    const a = b.anchor;
    if (a === null || a === undefined) return null;
    if (typeof a !== "object") return "anchor must be null or an object";
    if (!Number.isSafeInteger(a.chain_id) || a.chain_id <= 0) return "anchor.chain_id must be a positive integer";
    if (!isAddress(a.contract)) return "anchor.contract must be an address: 0x and 40 hex digits";
    if (a.dataset_id !== bytesToHex(await sha256(utf8.encode(cp.log)))) return "anchor.dataset_id must be SHA-256 of checkpoint.log";
    if (a.transaction !== null && !(typeof a.transaction === "string" && /^0x[0-9a-fA-F]{64}$/.test(a.transaction))) return "anchor.transaction must be null or 0x and 64 hex digits";
    if (a.block !== null && !isCount(a.block)) return "anchor.block must be null or a block number";
    return null;
  }

  // Version 2 (§10): the row is a leaf of a shard; the shard's head is a leaf of the checkpoint.
  function shardShapeProblem(b) {
    const s = b.shard, cp = b.checkpoint;
    if (!s || typeof s !== "object" || Object.keys(s).sort().join() !== "root,shard,tree_size") return "shard must be the shard head: root, shard, tree_size";
    const name = typeof s.shard === "string" ? s.shard.slice(b.dataset.length + 1) : "";
    if (s.shard !== b.log || !s.shard.startsWith(b.dataset + "/") || !/^[A-Za-z0-9._-]+\.p[0-9]+$/.test(name)) return "shard.shard must be the bundle's log, a shard of the dataset";
    if (cp.log !== b.dataset) return "checkpoint.log must be the dataset id";
    if (!isCount(s.tree_size) || !isCount(b.head_index) || !isCount(cp.shards)) return "shard.tree_size, head_index and checkpoint.shards must be non-negative integers";
    if (!isHash(s.root)) return "shard.root must be 64 lowercase hex digits";
    if (!Array.isArray(b.head_path) || !b.head_path.every(isHash)) return "head_path must be a list of 64-digit hex hashes";
    return null;
  }

  async function shardChecks(b, leaf) {
    const s = b.shard, cp = b.checkpoint;
    const shardRoot = await rootFromInclusion(leaf, b.leaf_index, s.tree_size, b.audit_path.map(hexToBytes));
    if (shardRoot === null || bytesToHex(shardRoot) !== s.root) {
      return [check("inclusion", false, "leaf " + b.leaf_index + ": the audit path does not lead to the root of shard " + s.shard + " at size " + s.tree_size)];
    }
    const checks = [check("inclusion", true, "leaf " + b.leaf_index + " is in shard " + s.shard + " at size " + s.tree_size)];
    const head = await leafHash(utf8.encode(canonicalize({ root: s.root, shard: s.shard, tree_size: s.tree_size })));
    const root = await rootFromInclusion(head, b.head_index, cp.shards, b.head_path.map(hexToBytes));
    if (root === null || bytesToHex(root) !== cp.root) {
      checks.push(check("shard", false, "the head of " + s.shard + " is not head " + b.head_index + " of the checkpoint of size " + cp.tree_size));
    } else {
      checks.push(check("shard", true, "the head of " + s.shard + " is in the dataset checkpoint of size " + cp.tree_size + " (" + cp.shards + " shards)"));
    }
    return checks;
  }

  async function proofChecks(b) {
    const checks = [];
    const problem = await shapeProblem(b);
    if (problem) return { checks: [check("bundle", false, problem)] };
    checks.push(check("bundle", true, "well-formed (version " + b.bundle_version + ")"));
    if (b.row && typeof b.row === "object" && !Array.isArray(b.row) && Object.keys(b.row).sort().join() === "root,shard,tree_size") {
      // A sharded checkpoint's leaves are its shard heads: one folds to its root as a "row" (§5).
      checks.push(check("leaf", false, "leaf " + b.leaf_index + ": the row is a shard head (root, shard, tree_size), not a published row: no published row has exactly these members"));
      return { checks };
    }
    const leaf = await leafHash(utf8.encode(canonicalize(b.row)));
    if (bytesToHex(leaf) !== b.leaf_hash) {
      checks.push(check("leaf", false, "leaf " + b.leaf_index + ": the row does not hash to leaf_hash"));
      return { checks };
    }
    checks.push(check("leaf", true, "leaf " + b.leaf_index + ": the row hashes to leaf_hash"));
    if (b.bundle_version === 2) {
      checks.push(...await shardChecks(b, leaf));
      return checks.some((c) => c.ok === false) ? { checks } : { checks, leafHash: bytesToHex(leaf) };
    }
    const computed = await rootFromInclusion(leaf, b.leaf_index, b.checkpoint.tree_size, b.audit_path.map(hexToBytes));
    if (computed === null || bytesToHex(computed) !== b.checkpoint.root) {
      checks.push(check("inclusion", false, "leaf " + b.leaf_index + ": the audit path does not lead to the root of the tree of size " + b.checkpoint.tree_size));
      return { checks };
    }
    checks.push(check("inclusion", true, "leaf " + b.leaf_index + " is in the tree of size " + b.checkpoint.tree_size));
    return { checks, leafHash: bytesToHex(leaf) };
  }

  // -- the chain, read over JSON-RPC from the URL the user gives (§8) ---------------------------

  function rpcClient(url) {
    let id = 0;
    const call = async (method, params) => {
      const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }) });
      const body = await response.json();
      if (body.error) throw new Error(method + ": " + (body.error.message || JSON.stringify(body.error)));
      return body.result;
    };
    const view = (to, selector, args = "") => call("eth_call", [{ to, data: "0x" + selector + args }, "latest"]);
    return { url, call, view };
  }

  const word = (hex, i) => hex.slice(2 + 64 * i, 2 + 64 * (i + 1));
  const wordInt = (hex, i) => Number(BigInt("0x" + (word(hex, i) || "0")));

  function decodeBytes(hex) { // an ABI-encoded `bytes` return value
    if (typeof hex !== "string" || hex.length < 130) return new Uint8Array();
    const offset = wordInt(hex, 0) / 32, length = wordInt(hex, offset);
    return hexToBytes(hex.slice(2 + 64 * (offset + 1), 2 + 64 * (offset + 1) + 2 * length));
  }

  // -- the pinned publisher identity (§14) ----------------------------------------------------

  async function parseIdentity(text) {
    let envelope;
    try { envelope = JSON.parse(text); } catch (e) { throw new Error("the identity document is not JSON"); }
    if (!envelope || typeof envelope !== "object" || canonicalize(envelope) !== text) throw new Error("the identity document is not in its RFC 8785 canonical form");
    const id = envelope.identity, sigs = envelope.signatures;
    if (!id || id.identity_version !== 1 || !Number.isSafeInteger(id.chain_id) || !isAddress(id.registry) || !isAddress(id.registry_owner) || !Array.isArray(id.keys) || !id.keys.length || !Array.isArray(sigs) || !sigs.length) {
      throw new Error("the identity document lacks identity_version 1, chain_id, registry, registry_owner, keys or signatures");
    }
    const body = utf8.encode(canonicalize(id));
    let signaturesChecked = true;
    for (const s of sigs) {
      const key = id.keys.find((k) => k.key_id === s.key_id);
      if (!key || key.public_key !== s.public_key) throw new Error("a signature is by a key the identity does not list");
      if (bytesToHex(await sha256(hexToBytes(key.public_key))) !== key.key_id) throw new Error("a key_id is not SHA-256 of its public key");
      try {
        const k = await crypto.subtle.importKey("raw", hexToBytes(key.public_key), { name: "Ed25519" }, false, ["verify"]);
        if (!(await crypto.subtle.verify({ name: "Ed25519" }, k, hexToBytes(s.signature), body))) throw new Error("bad");
      } catch (e) {
        if (e.message === "bad") throw new Error("an Ed25519 signature of the identity does not verify");
        signaturesChecked = false; // this browser has no Ed25519: the registry binding still holds
      }
    }
    return { text, doc: id, sha256: bytesToHex(await sha256(utf8.encode(text))), signaturesChecked };
  }

  // The pin (a document, or a registry and chain id) resolved against the chain: the check and,
  // when the registry can be read, what to read anchors from.
  async function resolveTrust(pin, rpc) {
    const none = (detail) => ({ check: check("identity", null, "not checked: " + detail) });
    if (!pin || (!pin.identity && !pin.registry)) return none("no pinned publisher identity: paste the publisher's identity document, or its registry and chain id");
    let identity = null;
    try {
      if (pin.identity) identity = await parseIdentity(pin.identity);
    } catch (e) { return { check: check("identity", false, "pinned identity: " + e.message) }; }
    if (!rpc) {
      if (!identity) return none("the pinned registry's identity is read from the chain: give an RPC URL");
      return { identity, check: check("identity", null, "not checked: registry " + identity.doc.registry + " on chain " + identity.doc.chain_id + " — its binding is read from the chain: give an RPC URL") };
    }
    try {
      const chainId = Number(BigInt(await rpc.call("eth_chainId", [])));
      if (!identity) {
        if (pin.chainId && chainId !== pin.chainId) return { check: check("identity", false, "the chain at " + rpc.url + " has id " + chainId + ", not the pinned " + pin.chainId) };
        const raw = decodeBytes(await rpc.view(pin.registry, SELECTORS.identityDocument));
        if (!raw.length) return { check: check("identity", false, "the pinned registry " + pin.registry + " binds no publisher identity") };
        try { identity = await parseIdentity(new TextDecoder().decode(raw)); }
        catch (e) { return { check: check("identity", false, "the pinned registry's identity: " + e.message) }; }
        if (identity.doc.registry.toLowerCase() !== pin.registry.toLowerCase()) return { check: check("identity", false, "the registry's identity names another registry") };
      }
      const d = identity.doc, named = "registry " + d.registry + " on chain " + d.chain_id;
      if (chainId !== d.chain_id) return { identity, check: check("identity", false, "the chain at " + rpc.url + " has id " + chainId + "; the publisher's identity names chain " + d.chain_id) };
      const code = await rpc.call("eth_getCode", [d.registry, "latest"]);
      if (typeof code !== "string" || code.length <= 2) return { identity, check: check("identity", false, "no contract at " + named + ": the chain was reset, or is another") };
      const version = wordInt(await rpc.view(d.registry, SELECTORS.registryVersion).catch(() => "0x"), 0);
      if (version < 2) return { identity, rpc, check: check("identity", null, named + " is a version-1 registry: it binds no publisher identity") };
      const codeProblem = await registryCodeProblem(code, d.registry_owner);
      if (codeProblem) return { identity, check: check("identity", false, named + ": " + codeProblem) };
      const owner = "0x" + word(await rpc.view(d.registry, SELECTORS.owner), 0).slice(24);
      if (owner.toLowerCase() !== d.registry_owner.toLowerCase()) return { identity, check: check("identity", false, named + " is owned by " + owner + ", not " + d.registry_owner) };
      const bound = word(await rpc.view(d.registry, SELECTORS.identityHash), 0);
      if (bound !== identity.sha256) return { identity, check: check("identity", false, named + " is bound to identity " + bound + ", not the pinned " + identity.sha256) };
      const sigNote = identity.signaturesChecked ? "" : " (this browser cannot check Ed25519; the registry binding stands for it)";
      return { identity, rpc, check: check("identity", true, named + " is bound to the pinned identity " + identity.sha256.slice(0, 16) + "…" + sigNote) };
    } catch (e) {
      return { identity, check: check("identity", null, "not checked: the chain at " + rpc.url + " did not answer (" + e.message + ")") };
    }
  }

  // -- the anchor: on the pinned registry, or else at least the listing's checkpoint -----------

  async function anchorCheck(b, trust, listed) {
    const cp = b.checkpoint, d = trust.identity && trust.identity.doc;
    if (d && b.anchor && (b.anchor.chain_id !== d.chain_id || b.anchor.contract.toLowerCase() !== d.registry.toLowerCase())) {
      return check("anchor", false, "the bundle names registry " + b.anchor.contract + " on chain " + b.anchor.chain_id + "; the pinned publisher's registry is " + d.registry + " on chain " + d.chain_id);
    }
    if (!trust.rpc || trust.check.ok === false) {
      if (listed && (listed.tree_size !== cp.tree_size || listed.root !== cp.root || listed.manifest_sha256 !== cp.manifest_sha256)) {
        return check("anchor", false, "not the listing's anchored checkpoint (tree size " + listed.tree_size + ", root " + listed.root.slice(0, 16) + "…), and the anchor was not read: give an RPC URL");
      }
      const why = trust.check.ok === false ? "the publisher identity did not check out" : "give an RPC URL to read the anchor";
      return check("anchor", null, "not checked: " + why + (listed ? " (the checkpoint is the one the listing shows)" : ""));
    }
    try {
      const datasetId = bytesToHex(await sha256(utf8.encode(cp.log)));
      const result = await trust.rpc.view(d.registry, SELECTORS.getAnchor, datasetId + BigInt(cp.tree_size).toString(16).padStart(64, "0"));
      const root = word(result, 0), manifest = word(result, 1), block = wordInt(result, 3);
      if (!root || /^0+$/.test(root)) return check("anchor", false, "no anchor of " + cp.log + " at size " + cp.tree_size + " in registry " + d.registry);
      if (root !== cp.root) return check("anchor", false, "anchored root " + root + " != checkpoint root " + cp.root);
      if (manifest !== cp.manifest_sha256) return check("anchor", false, "anchored manifest hash " + manifest + " != " + cp.manifest_sha256);
      if (b.anchor && b.anchor.block !== null && b.anchor.block !== block) return check("anchor", false, "anchored in block " + block + ", not " + b.anchor.block);
      if (b.anchor && b.anchor.transaction) {
        const receipt = await trust.rpc.call("eth_getTransactionReceipt", [b.anchor.transaction]);
        if (!receipt || Number(receipt.status) !== 1 || (receipt.to || "").toLowerCase() !== d.registry.toLowerCase() || Number(receipt.blockNumber) !== block) {
          return check("anchor", false, "transaction " + b.anchor.transaction + " is not the anchor's (block " + block + " of " + d.registry + ")");
        }
      }
      return check("anchor", true, "root and manifest hash anchored in registry " + d.registry + ", block " + block + (b.anchor && b.anchor.transaction ? ", tx " + b.anchor.transaction : ""));
    } catch (e) {
      return check("anchor", null, "not checked: the chain did not answer (" + e.message + ")");
    }
  }

  function statusOf(checks, required) {
    if (checks.some((c) => c.ok === false)) return NOT_VERIFIED;
    if (checks.some((c) => c.ok === null) || required.some((n) => !checks.find((c) => c.check === n))) return INCOMPLETE;
    return VERIFIED;
  }

  // One bundle against a resolved trust root and the listings' anchored checkpoints.
  async function verifyBundle(bundle, trust, listings) {
    trust = trust || (await resolveTrust(null, null));
    const { checks, leafHash: leaf } = await proofChecks(bundle);
    if (leaf !== undefined) {
      checks.push(trust.check);
      const listed = listings && listings[bundle.dataset];
      checks.push(await anchorCheck(bundle, trust, listed));
    }
    const required = ["bundle", "leaf", "inclusion", "identity", "anchor"];
    if (bundle && bundle.bundle_version === 2) required.splice(3, 0, "shard");
    const status = statusOf(checks, required);
    const reason = (checks.find((c) => c.ok === false) || checks.find((c) => c.ok === null) || checks[checks.length - 1]).detail;
    return { status, verified: status === VERIFIED, reason, checks, leaf_hash: leaf ?? null,
      dataset: bundle && bundle.dataset, leaf_index: bundle && bundle.leaf_index };
  }

  // A bundle, a list of bundles, or {"bundles": [...]}: verified one by one. ``options``:
  // {pin: {identity (text) | registry, chainId}, rpcUrl, listings: {dataset: checkpoint}}.
  async function verifyText(text, options = {}) {
    let parsed;
    try { parsed = JSON.parse(text); } catch (e) { return [{ status: NOT_VERIFIED, verified: false, reason: "not JSON: " + e.message, checks: [] }]; }
    const bundles = Array.isArray(parsed) ? parsed : (parsed && Array.isArray(parsed.bundles) ? parsed.bundles : [parsed]);
    const trust = await resolveTrust(options.pin, options.rpcUrl ? rpcClient(options.rpcUrl) : null);
    const verdicts = [];
    for (const b of bundles) {
      try { verdicts.push(await verifyBundle(b, trust, options.listings)); }
      catch (e) { verdicts.push({ status: NOT_VERIFIED, verified: false, reason: e.message, checks: [] }); }
    }
    return verdicts;
  }

  function overall(verdicts) {
    if (!verdicts.length || verdicts.some((v) => v.status === NOT_VERIFIED)) return NOT_VERIFIED;
    return verdicts.some((v) => v.status === INCOMPLETE) ? INCOMPLETE : VERIFIED;
  }

  return { canonicalize, verifyBundle, verifyText, overall, parseIdentity, resolveTrust, rpcClient,
    bytesToHex, hexToBytes, sha256, rootFromInclusion, SELECTORS, VERIFIED, NOT_VERIFIED, INCOMPLETE };
})();

// The trust panel of the proof tab: what the user pins, kept in this browser (localStorage).
const RDATrust = (() => {
  const keys = { identity: "rda-pin-identity", registry: "rda-pin-registry", chainId: "rda-pin-chain-id", rpcUrl: "rda-rpc-url" };
  const field = (id) => document.getElementById(id);

  function load() {
    const get = (k) => localStorage.getItem(keys[k]) || "";
    const chainId = Number(get("chainId")) || null;
    const pin = get("identity") ? { identity: get("identity") } : (get("registry") ? { registry: get("registry"), chainId } : null);
    return { pin, rpcUrl: get("rpcUrl") || null };
  }

  function save() {
    const set = (k, v) => (v ? localStorage.setItem(keys[k], v) : localStorage.removeItem(keys[k]));
    set("identity", field("pin-identity").value.trim());
    set("registry", field("pin-registry").value.trim());
    set("chainId", field("pin-chain-id").value.trim());
    set("rpcUrl", field("rpc-url").value.trim());
    show();
  }

  function show() {
    const { pin, rpcUrl } = load();
    if (!field("pin-status")) return;
    field("pin-identity").value = (pin && pin.identity) || "";
    field("pin-registry").value = (pin && pin.registry) || "";
    field("pin-chain-id").value = (pin && pin.chainId) || "";
    field("rpc-url").value = rpcUrl || "";
    field("pin-status").textContent = !pin ? "Nothing pinned: verdicts will be INCOMPLETE."
      : (pin.identity ? "Identity document pinned." : "Registry " + pin.registry + " pinned.") + (rpcUrl ? " Anchors are read from " + rpcUrl + "." : " No RPC URL: anchors are not read.");
  }

  return { load, save, show };
})();
