// The proof tab: paste a bundle (or take the console's), verify it in the browser with verify.js.
// Kept apart from the rest of the page so the verifier can grow here on its own.
"use strict";

(() => {
  const { $, el, switchTab } = App;

  async function verifyPasted() {
    const verdicts = await RDA.verifyText($("bundle").value);
    const ok = verdicts.length > 0 && verdicts.every((v) => v.verified);
    const box = $("verdict");
    box.className = "verdict " + (ok ? "ok" : "bad");
    box.replaceChildren(el("div", { id: "verdict-line" }, ok ? `VERIFIED — ${verdicts.length} bundle(s)` : "NOT VERIFIED"),
      ...verdicts.map((v) => el("div", { class: "mono" }, (v.verified ? "✓ " : "✗ ") + v.reason +
        (v.leaf_hash ? ` (leaf hash ${v.leaf_hash.slice(0, 16)}…)` : ""))));
    box.hidden = false;
  }

  App.onBoot(() => {
    $("verify").addEventListener("click", verifyPasted);
    $("check-proofs").addEventListener("click", () => {
      $("bundle").value = JSON.stringify({ bundles: App.state.bundles }, null, 2);
      switchTab("proof");
      verifyPasted();
    });
  });
})();
