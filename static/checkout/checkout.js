// The hosted checkout's script (templates/checkout/checkout.html): the countdown, the live status, copy buttons, the
// receipt's print button, and "Pay with browser wallet" (EIP-1193). Its configuration and words come from the page
// (<script id="checkout-config" type="application/json">), in the customer's language; amounts arrive as exact
// strings formatted by the server, and the wallet's transfer amount is an integer of base units handled as a BigInt.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("checkout-config").textContent);
  var words = cfg.i18n;
  var card = document.getElementById("checkout");
  var statusText = document.getElementById("status-text");
  var countdown = document.getElementById("countdown");
  var countdownWrap = document.getElementById("countdown-wrap");
  var payBlock = document.getElementById("pay-block");
  var STATES = ["processing", "succeeded", "expired", "canceled", "requires_confirmation", "unavailable"];
  var TERMINAL = { succeeded: true, canceled: true };

  function format(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (all, name) { return name in values ? values[name] : all; });
  }

  // Seconds to add to the browser's clock to get the server's: the countdown ignores the device's clock skew.
  var skew = cfg.now - Date.now() / 1000;
  var status = cfg.status;
  var expiresAt = cfg.expiresAt;

  function serverNow() { return Date.now() / 1000 + skew; }

  function displayState() {
    var expired = expiresAt !== null && serverNow() >= expiresAt;
    if (status === "canceled") { return card.getAttribute("data-state") === "expired" || expired ? "expired" : "canceled"; }
    if (status === "requires_action" && expired) { return "expired"; }
    return status;
  }

  function render() {
    var state = displayState();
    if (card.getAttribute("data-state") !== state) { card.setAttribute("data-state", state); }
    var label = words.status[state] || state;
    if (statusText.textContent !== label) { statusText.textContent = label; }
    if (payBlock) { payBlock.hidden = state !== "requires_action"; }
    if (countdownWrap) { countdownWrap.hidden = state !== "requires_action"; }
    STATES.forEach(function (name) {
      var el = document.getElementById("state-" + name);
      if (el) { el.hidden = name !== state; }
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function tick() {
    if (countdown && expiresAt !== null) {
      var left = Math.max(0, Math.floor(expiresAt - serverNow()));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      var text = (h ? h + ":" + pad(m) : pad(m)) + ":" + pad(s);
      if (countdown.textContent !== text) {
        countdown.textContent = text;
        countdown.setAttribute("datetime", "PT" + left + "S");
      }
    }
    render();
  }

  // --- What is left to pay, a note on surplus or late funds, the receipt: as the server words them ---------------

  function setText(id, text) {
    var el = document.getElementById(id);
    if (!el) { return; }
    if (el.textContent !== (text || "")) { el.textContent = text || ""; }
    el.hidden = !text;
  }

  var shownAmount = cfg.wallet ? cfg.wallet.amount : null;
  function applyPay(pay) {
    if (!pay) { return; }
    setText("pay-progress", pay.progress);
    var amount = document.getElementById("token-amount");
    var text = pay.amount + " " + pay.symbol;
    if (amount && amount.textContent !== text) { amount.textContent = text; }
    var copyAmount = document.getElementById("copy-amount");
    if (copyAmount) { copyAmount.setAttribute("data-copy", pay.amount); }
    var link = document.getElementById("open-wallet");
    if (link && link.getAttribute("href") !== pay.payment_uri) { link.setAttribute("href", pay.payment_uri); }
    if (pay.qr_svg && pay.amount_base_units !== shownAmount) {
      document.getElementById("qr").innerHTML = pay.qr_svg;  // the server's own SVG of the new EIP-681 link
    }
    if (pay.amount_base_units !== shownAmount) {
      shownAmount = pay.amount_base_units;
      if (cfg.wallet) { cfg.wallet.amount = pay.amount_base_units; }
      walletIdle();
    }
  }

  function applyNotice(notice) { setText("funds-notice", notice ? notice.text : ""); }

  var receiptShown = !!document.querySelector("#receipt .receipt");
  function applyReceipt(html) {
    if (html && !receiptShown) {
      document.getElementById("receipt").innerHTML = html;  // rendered (and escaped) by the server's template
      receiptShown = true;
    }
  }

  var timer = null;
  function schedule(ms) { clearTimeout(timer); timer = setTimeout(poll, ms); }

  function poll() {
    fetch(cfg.statusUrl, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data) {
          var fresh = data.now - Date.now() / 1000;
          if (Math.abs(fresh - skew) > 2) { skew = fresh; }
          status = data.status;
          expiresAt = data.expires_at;
          applyPay(data.pay);
          applyNotice(data.notice);
          applyReceipt(data.receipt_html);
          tick();
        }
        if (!TERMINAL[status]) { schedule(2000); }
      })
      .catch(function () { schedule(4000); });
  }

  // --- Copy to clipboard, with a fallback for browsers (or plain-http pages) without the async clipboard API ------

  var announcer = document.getElementById("copy-announcer");
  function legacyCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "clip-helper";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject();
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return legacyCopy(text); });
    }
    return legacyCopy(text);
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-copy]"), function (button) {
    var original = button.innerHTML;
    button.addEventListener("click", function () {
      copy(button.getAttribute("data-copy")).then(function () {
        button.classList.add("copied");
        button.textContent = words.copied;
        announcer.textContent = button.getAttribute("data-copied-label");
      }, function () {
        announcer.textContent = words.copy_failed;
      }).then(function () {
        setTimeout(function () { button.classList.remove("copied"); button.innerHTML = original; }, 1600);
      });
    });
  });

  var printButton = document.getElementById("print-receipt");
  if (printButton) { printButton.addEventListener("click", function () { window.print(); }); }

  // --- Pay with browser wallet (EIP-1193): switch or add the chain, send the exact ERC-20 transfer ----------------

  var walletButton = document.getElementById("wallet-pay");
  var walletStatus = document.getElementById("wallet-status");
  var ethereum = window.ethereum;

  function walletSay(text, hash) {
    walletStatus.textContent = text;
    if (hash) {
      var explorer = cfg.wallet.blockExplorerUrls[0];
      var node = document.createElement(explorer ? "a" : "code");
      node.textContent = hash;
      if (explorer) {
        node.href = explorer.replace(/\/+$/, "") + "/tx/" + hash;
        node.target = "_blank";
        node.rel = "noreferrer noopener";
      }
      node.id = "wallet-tx";
      walletStatus.appendChild(document.createTextNode(" "));
      walletStatus.appendChild(node);
    }
    walletStatus.hidden = !text;
  }

  function walletIdle() { if (walletButton) { walletButton.disabled = false; } }

  function hex32(hexDigits) {
    if (hexDigits.length > 64) { throw new Error("value too large"); }
    return "0".repeat(64 - hexDigits.length) + hexDigits;
  }

  // transfer(address,uint256): the selector, then both arguments as 32-byte words. The amount is an integer of base
  // units given as a decimal string: BigInt keeps every digit (a Number would round above 2^53).
  function transferData(to, amountBaseUnits) {
    var recipient = String(to).toLowerCase();
    if (!/^0x[0-9a-f]{40}$/.test(recipient)) { throw new Error("bad recipient"); }
    if (!/^[0-9]+$/.test(amountBaseUnits)) { throw new Error("bad amount"); }
    var amount = BigInt(amountBaseUnits);
    if (amount <= BigInt(0)) { throw new Error("nothing to pay"); }
    return "0xa9059cbb" + hex32(recipient.slice(2)) + hex32(amount.toString(16));
  }

  function ensureChain(wallet) {
    return ethereum.request({ method: "eth_chainId" }).then(function (current) {
      if (parseInt(current, 16) === parseInt(wallet.chainId, 16)) { return null; }
      walletSay(format(words.wallet_switching, { network: wallet.chainName }));
      return ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId: wallet.chainId }] })
        .catch(function (error) {
          if (!error || error.code !== 4902) { throw error; }
          if (!wallet.rpcUrls.length) { throw new Error(format(words.wallet_no_chain, { network: wallet.chainName })); }
          var chain = { chainId: wallet.chainId, chainName: wallet.chainName, rpcUrls: wallet.rpcUrls,
                        nativeCurrency: wallet.nativeCurrency };
          if (wallet.blockExplorerUrls.length) { chain.blockExplorerUrls = wallet.blockExplorerUrls; }
          return ethereum.request({ method: "wallet_addEthereumChain", params: [chain] });
        });
    });
  }

  function payWithWallet() {
    var wallet = cfg.wallet;
    var from;
    walletButton.disabled = true;
    walletSay(words.wallet_connecting);
    ethereum.request({ method: "eth_requestAccounts" })
      .then(function (accounts) {
        if (!accounts || !accounts.length) { throw { code: 4001 }; }
        from = accounts[0];
        return ensureChain(wallet);
      })
      .then(function () {
        walletSay(words.wallet_confirm);
        return ethereum.request({ method: "eth_sendTransaction", params: [{
          from: from, to: wallet.token, value: "0x0", data: transferData(wallet.to, wallet.amount)
        }] });
      })
      .then(function (hash) {
        walletSay(words.wallet_sent, String(hash));
        schedule(0);  // the page's live status takes over from here
      })
      .catch(function (error) {
        walletButton.disabled = false;
        if (error && error.code === 4001) { walletSay(words.wallet_rejected); return; }
        walletSay(format(words.wallet_failed, { reason: (error && error.message) || String(error) }));
      });
  }

  if (walletButton && cfg.wallet && ethereum && typeof ethereum.request === "function") {
    walletButton.hidden = false;
    var openLink = document.getElementById("open-wallet");
    if (openLink) { openLink.className = "btn btn-secondary"; }
    walletButton.addEventListener("click", payWithWallet);
  }

  tick();
  setInterval(tick, 1000);
  if (!TERMINAL[status]) { schedule(2000); }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !TERMINAL[status]) { schedule(0); }
  });
})();
