// A wallet in the page, through the standard EIP-1193 provider (window.ethereum): sign in with
// Ethereum (EIP-4361: the server's nonce and message, signed with personal_sign) for an API key
// bound to the wallet, and buy a licence on chain from the dataset page. The transactions are
// prepared by the server (an ERC-20 approve when needed, then DataLicences.buy) and sent by the
// wallet, which shows the user what they sign; the licence then appears here from the chain's
// events alone, with no step by the seller.
"use strict";

(() => {
  const { $, el, api, showError } = App;
  const wallet = () => window.ethereum;
  const utf8Hex = (text) => "0x" + [...new TextEncoder().encode(text)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function post(path, body) {
    const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ? `${answer.error.code}: ${answer.error.message}` : response.statusText);
    return answer;
  }

  async function signInWithWallet() {
    try {
      const [address] = await wallet().request({ method: "eth_requestAccounts" });
      const { message } = await post("/api/siwe/nonce", { address });
      const signature = await wallet().request({ method: "personal_sign", params: [utf8Hex(message), address] });
      const { api_key: key } = await post("/api/siwe/verify", { message, signature });
      $("api-key").value = "";
      await App.signIn(key);
    } catch (e) { showError("Wallet sign-in: " + (e.message || e)); }
  }

  async function receipt(hash) {
    for (let i = 0; i < 240; i++) {
      const found = await wallet().request({ method: "eth_getTransactionReceipt", params: [hash] });
      if (found) return found;
      await sleep(250);
    }
    throw new Error("the transaction was not mined in a minute: " + hash);
  }

  async function buy(dataset, offer, status) {
    try {
      status.textContent = "Preparing the transactions…";
      const { transactions } = await api("/api/listings/" + encodeURIComponent(dataset) + "/buy",
        { method: "POST", body: JSON.stringify({ offer_id: offer.offer_id }) });
      for (const [i, tx] of transactions.entries()) {
        status.textContent = `Confirm transaction ${i + 1} of ${transactions.length} in your wallet…`;
        const hash = await wallet().request({ method: "eth_sendTransaction", params: [tx] });
        const mined = await receipt(hash);
        if (mined.status !== "0x1") throw new Error("the transaction failed on chain: " + hash);
      }
      status.textContent = "Bought. Waiting for the marketplace to see the licence on chain…";
      for (let i = 0; i < 240; i++) {
        const me = await api("/api/me");
        if (me.datasets.includes(dataset)) {
          status.textContent = "Licensed: the data is yours to query.";
          await App.loadListings();
          await App.showDataset(dataset);
          return;
        }
        await sleep(250);
      }
      throw new Error("the licence was bought but is not visible yet: reload in a moment");
    } catch (e) { status.textContent = ""; showError("Buying: " + (e.message || e)); }
  }

  const when = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  const duration = (s) => (s % 86400 === 0 ? `${s / 86400} days` : s % 3600 === 0 ? `${s / 3600} hours` : `${s} s`);

  // The dataset page's "On chain" panel: the asset token, its owner and the open offers.
  App.assetPanel = function assetPanel(l) {
    const a = l.asset;
    if (!a) return "";
    const status = el("p", { id: "buy-status", role: "status" });
    const signedWithWallet = App.state.me && App.state.me.wallet;
    const licence = a.licence && a.licence.expires_at
      ? el("p", { id: "licence-expiry" }, `Your licence runs until ${when(a.licence.expires_at)}.`) : "";
    const offers = a.offers.map((o) => el("li", { class: "offer", "data-offer": o.offer_id },
      `${o.price} ${o.symbol} for ${duration(o.duration_s)} `,
      wallet() && signedWithWallet
        ? el("button", { class: "buy-offer", onclick: () => buy(l.dataset, o, status) }, l.licensed ? "Extend with wallet" : "Buy with wallet")
        : el("span", { class: "hint" }, "(sign in with a wallet to buy)")));
    return el("section", { id: "asset", class: "panel", "aria-labelledby": "asset-h" },
      el("h3", { id: "asset-h" }, "On chain: data asset and licences"),
      el("dl", {},
        el("dt", {}, "Token"), el("dd", { id: "asset-token" }, `DataAsset #${a.token_id} (ERC-721) at `, el("span", { class: "mono" }, a.contract)),
        el("dt", {}, "Owner"), el("dd", { class: "mono", id: "asset-owner" }, a.owner),
        el("dt", {}, "Licensed checkpoint"), el("dd", {}, `${a.licensed_tree_size.toLocaleString("en")} rows; ${a.node_share_bps / 100} % of each sale goes to the nodes' owners, pro rata to their rows`)),
      licence,
      a.offers.length ? el("ul", { id: "offers" }, offers) : el("p", { class: "hint" }, "No open offer."),
      status);
  };

  App.onBoot(() => {
    if (!wallet()) return;
    const button = el("button", { type: "button", id: "wallet-signin", class: "secondary", onclick: signInWithWallet }, "Sign in with wallet");
    $("signin").append(button);
  });
})();
