// The proof tab: paste a bundle (or take the console's), verify it in the browser with verify.js
// against what the user pinned (the trust fieldset, RDATrust). Kept apart from the rest of the
// page so the verifier can grow here on its own.
"use strict";

(() => {
  const { $, el, api, showError, switchTab } = App;

  async function verifyPasted() {
    // Checked against what the user pinned (RDATrust, verify.js) and the listings' anchored
    // checkpoints; the anchor itself is read from the user's RPC URL, never from this server.
    const listings = Object.fromEntries(App.state.listings.map((l) => [l.dataset, l.checkpoint]));
    const verdicts = await RDA.verifyText($("bundle").value, { ...RDATrust.load(), listings });
    const status = RDA.overall(verdicts);
    const box = $("verdict");
    box.className = "verdict " + (status === RDA.VERIFIED ? "ok" : status === RDA.INCOMPLETE ? "incomplete" : "bad");
    box.replaceChildren(el("div", { id: "verdict-line" }, status + (status === RDA.VERIFIED ? ` — ${verdicts.length} bundle(s)` : "")),
      ...verdicts.map((v) => el("div", { class: "mono" }, ({ VERIFIED: "✓ ", INCOMPLETE: "– " }[v.status] || "✗ ") + v.reason +
        (v.leaf_hash ? ` (leaf hash ${v.leaf_hash.slice(0, 16)}…)` : ""),
        el("ul", { class: "checks" }, (v.checks || []).map((c) => el("li", {}, `${c.ok === true ? "✓" : c.ok === false ? "✗" : "–"} ${c.check}: ${c.detail}`))))));
    box.hidden = false;
  }

  // The identity this site offers, filled in for the user to compare with the publisher's own
  // announcement before pinning it: nothing is trusted until "Pin" is pressed.
  async function fillOffered() {
    try {
      const offered = await api("/api/publisher");
      $("pin-identity").value = offered.identity;
      $("pin-status").textContent = "Offered by this site, SHA-256 " + offered.sha256 + ": compare it with what the publisher announces, then Pin.";
    } catch (e) { showError(e.message); }
  }

  App.onBoot(() => {
    $("verify").addEventListener("click", verifyPasted);
    $("pin-save").addEventListener("click", RDATrust.save);
    $("pin-offered").addEventListener("click", fillOffered);
    RDATrust.show();
    $("check-proofs").addEventListener("click", () => {
      $("bundle").value = JSON.stringify({ bundles: App.state.bundles }, null, 2);
      switchTab("proof");
      verifyPasted();
    });
  });
})();
