// Proof bundle verification in the browser: RFC 8785 (JCS) leaf bytes, RFC 9162 inclusion.
// Written from docs/proof-format.md; SHA-256 is WebCrypto's. No dependencies.
"use strict";

const RDA = (() => {
  const utf8 = new TextEncoder();

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

  // One bundle: the row, its leaf index, the checkpoint (tree size and root) and the path.
  async function verifyBundle(bundle) {
    const checkpoint = bundle.checkpoint || bundle;
    const size = checkpoint.tree_size, root = checkpoint.root;
    const index = bundle.leaf_index ?? bundle.index;
    const path = bundle.inclusion_proof ?? bundle.proof ?? bundle.audit_path;
    if (bundle.row === undefined || index === undefined || size === undefined || !root || !Array.isArray(path)) {
      return { verified: false, reason: "a bundle needs row, leaf_index, checkpoint.tree_size, checkpoint.root and inclusion_proof" };
    }
    const leafBytes = utf8.encode(canonicalize(bundle.row));
    const leaf = await leafHash(leafBytes);
    const result = { dataset: bundle.dataset ?? checkpoint.dataset, leaf_index: index, tree_size: size,
      root, leaf_hash: bytesToHex(leaf), anchor_tx: bundle.anchor?.transaction ?? checkpoint.anchor_tx ?? null };
    if (bundle.leaf_hash && bundle.leaf_hash !== result.leaf_hash) {
      return { ...result, verified: false, reason: "the row does not hash to the bundle's leaf hash" };
    }
    const computed = await rootFromInclusion(leaf, index, size, path.map(hexToBytes));
    if (computed === null) return { ...result, verified: false, reason: "the inclusion path does not fit leaf " + index + " of a tree of size " + size };
    result.computed_root = bytesToHex(computed);
    if (result.computed_root !== String(root).toLowerCase()) {
      return { ...result, verified: false, reason: "the row and path lead to root " + result.computed_root.slice(0, 16) + "…, not the checkpoint's root" };
    }
    const anchor = result.anchor_tx ? "; its anchor is tx " + result.anchor_tx : "; check that this size and root are anchored";
    return { ...result, verified: true, reason: "the row is leaf " + index + " of the tree of size " + size + " with this root" + anchor };
  }

  // A bundle, a list of bundles, or {"bundles": [...]}: verified one by one.
  async function verifyText(text) {
    let parsed;
    try { parsed = JSON.parse(text); } catch (e) { return [{ verified: false, reason: "not JSON: " + e.message }]; }
    const bundles = Array.isArray(parsed) ? parsed : (parsed && Array.isArray(parsed.bundles) ? parsed.bundles : [parsed]);
    const verdicts = [];
    for (const b of bundles) {
      try { verdicts.push(await verifyBundle(b || {})); }
      catch (e) { verdicts.push({ verified: false, reason: e.message }); }
    }
    return verdicts;
  }

  return { canonicalize, verifyBundle, verifyText, bytesToHex, hexToBytes, sha256, rootFromInclusion };
})();
