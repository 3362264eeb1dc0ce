// Demo storefront: calls the service's public API exactly as a shop front end would.
//
//   POST /recommend   placement for_you | product_page | cart   (the widgets)
//   POST /complements                                          ("goes well with" for anonymous visitors)
//   POST /events      cart and purchase events                  (needs the public key)
//
// Names, prices, sample customers and purchase histories come from /demo/* helpers: a real shop has them
// in its own catalogue and order system.  Everything is built with DOM calls (textContent), never
// innerHTML, so catalogue text cannot inject markup.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("demo-config").textContent || "{}");
  const $ = (id) => document.getElementById(id);
  const N = 6;

  const state = {
    customer: null,                 // a chosen customer id, or null for an anonymous visitor
    // Anonymous visitors still need an id for cart events: a per-page-load session id.
    visitor: "visitor-" + Math.random().toString(36).slice(2, 10),
    carts: new Map(),               // shopper id -> [item ids] (the server keeps the same cart from the events)
    product: null,                  // item id on the product page
    items: new Map(),               // item id -> {name, category, price} (the shop's own catalogue data)
    requests: 0,                    // drops answers that arrive after a newer request for the same widget
  };
  const latest = {};

  const shopper = () => state.customer || state.visitor;
  const cart = () => {
    if (!state.carts.has(shopper())) state.carts.set(shopper(), []);
    return state.carts.get(shopper());
  };

  // ------------------------------------------------------------------ helpers
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "hue") node.style.setProperty("--hue", String(value));
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function hue(category) {
    let h = 0;
    for (const ch of String(category || "")) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  const initials = (category) => (String(category || "").replace(/[^\p{L}\p{N}]/gu, "") || "?").slice(0, 2);

  const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const price = (value) => (value === null || value === undefined ? "" : money.format(value));
  const day = (iso) => new Date(iso + "T00:00:00").toLocaleDateString(undefined,
    { year: "numeric", month: "short", day: "numeric" });

  function chip(category) {
    return el("span", { class: "chip", hue: hue(category), dataset: { category: category || "" } },
      category || "uncategorised");
  }

  function say(message, isError) {
    const status = $("status");
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  async function post(path, body, withKey) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (withKey && config.apiKey) headers["x-api-key"] = config.apiKey;
    const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = Array.isArray(data.detail) ? data.detail.map((d) => d.msg || d).join("; ") : data.detail;
      throw new Error(`${path}: HTTP ${response.status}${detail ? " — " + detail : ""}`);
    }
    if (data.model_version) $("model-version").textContent = data.model_version;
    return data;
  }

  function curl(path, body, withKey) {
    const key = withKey ? " -H 'x-api-key: $RECSYS_PUBLIC_KEY'" : "";
    return `curl -s -X POST ${location.origin}${path} -H 'content-type: application/json'${key} \\\n  -d '${JSON.stringify(body)}'`;
  }

  // The shop's own product data for ids the API returns (cached; one request per batch of unknown ids).
  async function describe(ids) {
    const missing = [...new Set(ids)].filter((id) => !state.items.has(id));
    for (let i = 0; i < missing.length; i += 100) {
      const chunk = missing.slice(i, i + 100);
      const data = await getJSON("/demo/items?ids=" + encodeURIComponent(chunk.join(",")) + "&limit=50");
      for (const item of data.items) state.items.set(item.item_id, item);
    }
  }
  const info = (id) => state.items.get(id) || { item_id: id, name: id, category: null, price: null };
  const remember = (items) => items.forEach((item) => state.items.set(item.item_id, item));

  // ------------------------------------------------------------------ widgets
  function card(rec) {
    const item = info(rec.item_id);
    const category = rec.category || item.category;
    const reason = rec.reason || {};
    return el("li", {
      class: "card fresh",
      dataset: { itemId: rec.item_id, category: category || "", reasonType: reason.type || "",
        sourceItemId: reason.source_item_id || "" },
    },
      el("div", { class: "tile", hue: hue(category), "aria-hidden": "true" }, initials(category)),
      el("button", {
        type: "button", class: "name link-button", title: "Open the product page",
        onclick: () => openProduct(rec.item_id, true),
      }, item.name),
      el("div", { class: "meta" }, chip(category), el("span", { class: "price" }, price(item.price))),
      reason.text ? el("p", { class: "reason" }, reason.text,
        el("span", { class: "reason-type" }, "reason: " + String(reason.type).replaceAll("_", " "))) : null,
      el("div", { class: "card-actions" },
        el("button", {
          type: "button", class: "button small add-to-cart", "aria-label": `Add ${item.name} to cart`,
          onclick: () => addToCart(rec.item_id),
        }, "Add to cart")));
  }

  // One widget refresh: request, describe the ids, render — unless a newer request for it started meanwhile.
  async function widget(name, list, callBox, path, body) {
    const ticket = ++state.requests;
    latest[name] = ticket;
    list.setAttribute("aria-busy", "true");
    callBox.textContent = curl(path, body, false);
    try {
      const data = await post(path, body, false);
      await describe(data.items.map((i) => i.item_id));
      if (latest[name] !== ticket) return null;
      list.replaceChildren(...(data.items.length
        ? data.items.map((rec) => card(rec))
        : [el("li", { class: "empty" }, "No suggestions.")]));
      callBox.textContent = curl(path, body, false) + "\n\n→ " + JSON.stringify(data, null, 1);
      return data;
    } catch (error) {
      if (latest[name] === ticket) list.replaceChildren(el("li", { class: "empty" }, String(error.message)));
      say(String(error.message), true);
      return null;
    } finally {
      if (latest[name] === ticket) list.setAttribute("aria-busy", "false");
    }
  }

  function loadForYou() {
    // Known customers: their history and cart; anonymous: the session's cart, then bestsellers.
    const body = { customer_id: shopper(), placement: "for_you", n: N, context_item_ids: cart().slice(-50) };
    return widget("forYou", $("for-you-list"), $("for-you-call"), "/recommend", body);
  }

  function loadGoesWell() {
    if (!state.product) return Promise.resolve(null);
    const [path, body] = state.customer
      ? ["/recommend", { customer_id: state.customer, placement: "product_page", n: N, context_item_ids: [state.product] }]
      : ["/complements", { item_ids: [state.product], n: N }];
    $("product-endpoint").replaceChildren(el("code", {}, "POST " + path),
      state.customer ? " · placement " : " (anonymous)", state.customer ? el("code", {}, "product_page") : null);
    return widget("goesWell", $("goes-well-list"), $("goes-well-call"), path, body);
  }

  function loadCartRecs() {
    const items = cart();
    if (!items.length) {
      $("cart-recs").replaceChildren(el("li", { class: "empty" }, "Add an item: what goes with your cart shows here."));
      return Promise.resolve(null);
    }
    // The server already holds this cart from the cart events; the context repeats it so the widget
    // also works when events are refused (no API key).
    const body = { customer_id: shopper(), placement: "cart", n: 4, context_item_ids: items.slice(-50) };
    return widget("cart", $("cart-recs"), $("cart-call"), "/recommend", body);
  }

  function renderCart() {
    const items = cart();
    $("cart-count").textContent = String(items.length);
    $("cart-empty").hidden = items.length > 0;
    $("checkout").disabled = items.length === 0;
    $("cart-list").replaceChildren(...items.map((id) => {
      const item = info(id);
      return el("li", { dataset: { itemId: id } }, el("button", {
        type: "button", class: "link-button", onclick: () => openProduct(id, true),
      }, item.name), chip(item.category), el("span", { class: "price" }, price(item.price)));
    }));
    const total = items.reduce((sum, id) => sum + (info(id).price || 0), 0);
    $("cart-total").textContent = items.length ? `Total ${price(total)}` : "";
  }

  async function addToCart(itemId) {
    const items = cart();
    const name = info(itemId).name;
    if (!items.includes(itemId)) items.push(itemId);
    renderCart();
    const event = { customer_id: shopper(), item_id: itemId, event: "cart", source: "demo-page" };
    let stored = false;
    try {
      const answer = await post("/events", { events: [event] }, true);
      stored = answer.carts === 1;
      $("cart-call").textContent = curl("/events", { events: [event] }, true) + "\n\n→ " + JSON.stringify(answer);
    } catch (error) {
      say(`${name} is in the cart, but the cart event was refused: ${error.message}`, true);
    }
    await Promise.all([loadCartRecs(), loadForYou()]);
    if (stored) say(`Added ${name} to the cart (cart event stored); suggestions updated.`);
  }

  async function checkout() {
    const items = cart().slice();
    if (!items.length) return;
    const order = "demo-" + Date.now().toString(36);
    const events = items.map((id) => ({ customer_id: shopper(), item_id: id, event: "purchase", order_id: order,
      price: info(id).price, source: "demo-page" }));
    try {
      const answer = await post("/events", { events }, true);
      state.carts.set(shopper(), []);
      renderCart();
      if (!state.customer) {  // the visitor now has a history: show it under their session id
        state.customer = state.visitor;
        showCustomerOption(state.visitor);
        syncUrl();
      }
      say(`Bought ${answer.purchases} item(s) as order ${order}: history and widgets updated.`);
      await refreshAll();
    } catch (error) {
      say(`Purchase refused: ${error.message}`, true);
    }
  }

  // ------------------------------------------------------------------ history
  async function loadHistory() {
    const list = $("history-list");
    const summary = $("history-summary");
    const chips = $("history-categories");
    if (!state.customer) {
      summary.textContent = "Anonymous visitors have no purchase history: the widgets use the cart and the "
        + "product page, then bestsellers.";
      chips.replaceChildren();
      list.replaceChildren();
      return;
    }
    const cid = state.customer;
    try {
      const data = await getJSON(`/demo/customers/${encodeURIComponent(cid)}/history?limit=50`);
      if (state.customer !== cid) return;
      remember(data.purchases);
      // The service keeps the cart from earlier cart events (another tab, a reload): start from it.
      if (Array.isArray(data.cart) && data.cart.length) {
        await describe(data.cart);
        if (state.customer !== cid) return;
        state.carts.set(cid, [...new Set([...data.cart, ...cart()])]);
      }
      if (!data.purchases.length) {
        summary.textContent = `${cid} has no purchases in this model (a cold start).`;
        chips.replaceChildren();
        list.replaceChildren();
        return;
      }
      const byDate = new Map();
      const counts = new Map();
      for (const p of data.purchases) {
        if (!byDate.has(p.date)) byDate.set(p.date, []);
        byDate.get(p.date).push(p);
        counts.set(p.category, (counts.get(p.category) || 0) + 1);
      }
      const shown = data.purchases.length < data.total_lines
        ? ` The latest ${data.purchases.length} are shown.` : "";
      summary.textContent = `${cid}: ${data.total_lines} purchase line${data.total_lines === 1 ? "" : "s"}, `
        + `latest on ${day(data.purchases[0].date)}.${shown}`;
      chips.replaceChildren(...[...counts.entries()].sort((a, b) => b[1] - a[1])
        .map(([category, count]) => el("li", {}, chip(category), " ", el("span", { class: "muted" }, `×${count}`))));
      list.replaceChildren(...[...byDate.entries()].map(([date, lines]) => {
        const total = lines.reduce((sum, p) => sum + (p.price || 0) * (p.quantity || 1), 0);
        return el("li", { dataset: { date } },
          el("h3", {}, el("time", { datetime: date }, day(date)), " ",
            el("span", { class: "order-total" }, `· ${lines.length} item(s) · ${price(total)}`)),
          el("ul", {}, lines.map((p) => el("li", {
            class: "history-line", dataset: { itemId: p.item_id, category: p.category || "" },
          },
            el("button", { type: "button", class: "link-button", onclick: () => openProduct(p.item_id, true) },
              p.name),
            chip(p.category),
            el("span", { class: "price" }, (p.quantity && p.quantity !== 1 ? `${p.quantity} × ` : "") + price(p.price))))));
      }));
    } catch (error) {
      summary.textContent = String(error.message);
    }
  }

  // ------------------------------------------------------------------ product page
  function renderSearch(items) {
    remember(items);
    $("search-results").replaceChildren(...(items.length ? items.map((item) => el("li", {},
      el("button", {
        type: "button", "aria-pressed": item.item_id === state.product ? "true" : "false",
        dataset: { itemId: item.item_id, category: item.category || "" },
        onclick: () => openProduct(item.item_id, true),
      }, `${item.name} · ${price(item.price)}`))) : [el("li", { class: "muted" }, "Nothing found.")]));
  }

  async function search(q) {
    try {
      const data = await getJSON("/demo/items?limit=8" + (q ? "&q=" + encodeURIComponent(q) : ""));
      renderSearch(data.items);
      return data.items;
    } catch (error) {
      say(String(error.message), true);
      return [];
    }
  }

  async function showProduct(itemId, focus) {
    state.product = itemId;
    syncUrl();
    await describe([itemId]);
    const item = info(itemId);
    document.querySelectorAll("#search-results button").forEach((b) =>
      b.setAttribute("aria-pressed", b.dataset.itemId === itemId ? "true" : "false"));
    $("product-detail").replaceChildren(
      el("div", { class: "tile", hue: hue(item.category), "aria-hidden": "true" }, initials(item.category)),
      el("div", {},
        el("h3", { id: "product-name", tabindex: "-1", dataset: { itemId } }, item.name),
        el("p", {}, chip(item.category), " ", el("span", { class: "price" }, price(item.price)),
          " ", el("span", { class: "muted" }, item.item_id)),
        el("button", { type: "button", class: "button add-to-cart", id: "product-add",
          onclick: () => addToCart(itemId) }, "Add to cart")));
    if (focus) {
      $("product").scrollIntoView({ block: "start", behavior: "smooth" });
      $("product-name").focus({ preventScroll: true });
    }
  }

  async function openProduct(itemId, focus) {
    await showProduct(itemId, focus);
    await loadGoesWell();
  }

  // ------------------------------------------------------------------ customer picker
  async function loadCustomers(category) {
    const select = $("customer");
    try {
      const data = await getJSON("/demo/customers?limit=15" + (category ? "&category=" + encodeURIComponent(category) : ""));
      const keep = state.customer;
      select.replaceChildren(el("option", { value: "" }, "Anonymous visitor"),
        ...data.customers.map((c) => el("option", { value: c.customer_id },
          `${c.customer_id} — ${c.orders} order${c.orders === 1 ? "" : "s"}, last ${c.last_purchase}: ${c.last_categories.join(", ")}`)));
      showCustomerOption(keep);
    } catch (error) {
      say(String(error.message), true);
    }
  }

  // Select a customer in the picker, adding an option for an id that is not among the samples.
  function showCustomerOption(customerId) {
    const select = $("customer");
    if (customerId && ![...select.options].some((o) => o.value === customerId)) {
      select.append(el("option", { value: customerId, dataset: { entered: "true" } }, `${customerId} (entered)`));
    }
    select.value = customerId || "";
  }

  function describeWho() {
    $("who").replaceChildren(...(state.customer
      ? [`Shopping as ${state.customer}: the widgets use this customer's history and cart. `,
        el("a", { href: "#history" }, "Purchase history")]
      : [`Shopping anonymously (session id ${state.visitor} for cart events): widgets use the cart and the `
        + "product page, then bestsellers."]));
  }

  function syncUrl() {
    const params = new URLSearchParams();
    if (state.customer) params.set("customer", state.customer);
    if (state.product) params.set("item", state.product);
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }

  async function refreshAll() {
    describeWho();
    await loadHistory();  // first: it also brings the cart the service holds for this customer
    renderCart();
    await Promise.all([loadForYou(), loadGoesWell(), loadCartRecs()]);
  }

  async function choose(customerId) {
    state.customer = customerId || null;
    syncUrl();
    say(state.customer ? `Customer ${state.customer} selected.` : "Anonymous visitor selected.");
    await refreshAll();
  }

  // ------------------------------------------------------------------ start
  async function start() {
    $("model-version").textContent = config.modelVersion || "not loaded";
    const category = $("category");
    category.replaceChildren(el("option", { value: "" }, "any category (most recent customers)"),
      ...(config.categories || []).map((c) => el("option", { value: c }, c)));
    category.value = config.defaultCategory || "";

    category.addEventListener("change", () => loadCustomers(category.value));
    $("customer").addEventListener("change", (e) => {
      $("customer-id").value = "";
      choose(e.target.value);
    });
    $("picker").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("customer-id");
      if (!input.checkValidity()) { input.reportValidity(); return; }
      const value = input.value.trim();
      showCustomerOption(value);
      choose(value);
    });
    $("search").addEventListener("submit", (e) => {
      e.preventDefault();
      search($("search-q").value.trim());
    });
    $("checkout").addEventListener("click", checkout);

    const params = new URLSearchParams(location.search);
    const wanted = params.get("customer");
    await loadCustomers(category.value);
    const bestsellers = await search("");
    state.product = params.get("item") || (bestsellers[0] && bestsellers[0].item_id) || null;
    if (wanted) showCustomerOption(wanted);
    state.customer = wanted || null;
    if (state.product) await showProduct(state.product, false);
    await refreshAll();
    document.body.dataset.ready = "true";  // for tests and screenshots: first render done
  }

  start().catch((error) => say(String(error.message), true));
})();
