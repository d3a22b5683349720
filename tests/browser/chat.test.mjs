// The chat page end to end, as people use it: a real `charla serve` (target/debug/charla, built
// by `cargo test`), two pages in headless Chromium and an nc client in #lobby.
//
// Run by scripts/test.sh after cargo's tests; alone: `npm test --prefix tests/browser`.
// Screenshots (desktop 1280x800, phone 390x844) go to target/screenshots/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const binary = path.join(root, "target/debug/charla");
const shots = path.join(root, "target/screenshots");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 15_000;

let dataDir, port, server, browser;

/** A free loopback port: the server must come back on the same one after a restart. */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Starts `charla serve` (on `at`, with `dir`, and `extra` flags); resolves once it prints its URL. */
function startServer(extra = [], at = port, dir = dataDir) {
  return new Promise((resolve, reject) => {
    // TLS on (a self-signed certificate kept in the data directory): the same port serves
    // http and https.
    const args = ["serve", "--listen", `127.0.0.1:${at}`, "--data-dir", dir, "--flood-limit", "off", "--tls-self-signed", ...extra];
    const child = spawn(binary, args, {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), WAIT);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (out.includes("open in a browser")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr.on("data", () => {});
    child.once("exit", (code) => reject(new Error(`server exited (${code}): ${out}`)));
  });
}

function stopServer(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });
}

/** An nc client: its lines as they come, and a way to wait for one. */
function nc() {
  const child = spawn("nc", ["127.0.0.1", String(port)], { stdio: ["pipe", "pipe", "inherit"] });
  const client = { child, text: "", waiters: [] };
  child.stdout.on("data", (chunk) => {
    client.text += chunk;
    client.waiters = client.waiters.filter(([needle, resolve]) => (client.text.includes(needle) ? (resolve(), false) : true));
  });
  client.said = (needle) =>
    new Promise((resolve, reject) => {
      if (client.text.includes(needle)) return resolve();
      const timer = setTimeout(() => reject(new Error(`nc never saw ${JSON.stringify(needle)}; it saw:\n${client.text}`)), WAIT);
      client.waiters.push([needle, () => (clearTimeout(timer), resolve())]);
    });
  client.send = (line) => child.stdin.write(line + "\n");
  client.close = () => child.kill();
  return client;
}

/**
 * A new person: a page of their own (own storage), nick chosen in the welcome dialog; with
 * `account`, a password to log in (`mode` "login") or to create the account ("register"); over
 * `scheme` (https: the server's self-signed certificate accepted, as a person would once).
 */
async function person(nick, viewport = { width: 1280, height: 800 }, account = null, scheme = "http") {
  const context = await browser.newContext({ viewport, ignoreHTTPSErrors: scheme === "https" });
  const page = await context.newPage();
  page.on("pageerror", (e) => assert.fail(`${nick}'s page threw: ${e.message}`));
  await page.goto(`${scheme}://127.0.0.1:${port}/`);
  await page.fill("#nick-input", nick);
  if (account) {
    await page.click("#account-details summary");
    await page.fill("#password-input", account.password);
    await page.check(`input[name=account-mode][value=${account.mode}]`);
  }
  await page.press("#nick-input", "Enter");
  await page.locator("#status.online").waitFor({ timeout: WAIT });
  await page.locator(".buffer.active", { hasText: "#lobby" }).waitFor({ timeout: WAIT });
  return page;
}

async function say(page, text) {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
}

/** Waits until the log shows a message with exactly this text. */
function shows(page, text) {
  return page.locator("#log .text", { hasText: text }).first().waitFor({ timeout: WAIT });
}

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run cargo test (or cargo build) first`);
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  dataDir = mkdtempSync(path.join(tmpdir(), "charla-browser-"));
  port = await freePort();
  server = await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox"] });
  mkdirSync(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
  rmSync(dataDir, { recursive: true, force: true });
});

test("two pages and an nc client chat in #lobby, and pages talk privately", async () => {
  const alice = await person("alice");
  const bob = await person("bob");
  const plain = nc();
  await plain.said("Welcome to the chatroom!");

  await say(alice, "hello from alice, see https://example.org/docs");
  await shows(bob, "hello from alice");
  await plain.said("<alice> hello from alice");
  const link = bob.locator("#log a[href='https://example.org/docs']");
  assert.equal(await link.count(), 1, "links are clickable");

  plain.send("hi from nc <b>not bold</b><script>window.owned = 1</script>");
  await shows(alice, "hi from nc");
  await shows(bob, "hi from nc");
  assert.equal(await bob.locator("#log b").count(), 0, "markup from others is shown as text");
  assert.equal(await bob.evaluate(() => window.owned), undefined, "and never runs");

  await say(bob, "/me waves");
  await shows(alice, "waves");
  await plain.said("bob waves");

  // A private message: a conversation appears in bob's sidebar, unread, and holds it.
  await say(alice, "/msg bob just between us");
  const dm = bob.locator("#dms .buffer", { hasText: "alice" });
  await dm.waitFor({ timeout: WAIT });
  await dm.locator(".badge").waitFor({ timeout: WAIT });
  await dm.click();
  await shows(bob, "just between us");
  assert.equal(await alice.locator("#log .text", { hasText: "just between us" }).count(), 1, "alice sees it once, in the conversation");
  await say(bob, "got it");
  await shows(alice, "got it");

  await alice.locator("#rooms .buffer", { hasText: "#lobby" }).click();
  await bob.locator("#rooms .buffer", { hasText: "#lobby" }).click();

  // A long paste goes as one message (draft/multiline): one message on the page, each line
  // for nc.
  await alice.fill("#input", "first pasted line\nsecond pasted line\nthird pasted line");
  await alice.press("#input", "Enter");
  const pasted = bob.locator("#log .msg", { hasText: "first pasted line" });
  await pasted.waitFor({ timeout: WAIT });
  assert.equal(await pasted.locator(".text").innerText(), "first pasted line\nsecond pasted line\nthird pasted line");
  await plain.said("<alice> third pasted line");

  // Reactions are sent and shown.
  await pasted.hover();
  await pasted.locator(".react-button").click();
  await bob.locator(".picker button", { hasText: "🎉" }).click();
  await alice.locator("#log .msg", { hasText: "first pasted line" }).locator(".reaction", { hasText: "🎉 1" }).waitFor({ timeout: WAIT });

  // Mentions are highlighted.
  plain.send("alice: are you there?");
  await alice.locator("#log .msg.mention", { hasText: "are you there" }).waitFor({ timeout: WAIT });

  // Typing shows on the other page.
  await bob.fill("#input", "typing something");
  await bob.dispatchEvent("#input", "input");
  await alice.locator("#typing", { hasText: "bob is typing" }).waitFor({ timeout: WAIT });
  await say(bob, "done typing");
  await shows(alice, "done typing");

  plain.close();
  await alice.context().close();
  await bob.context().close();
});

test("an account made on the page keeps the nick, and another device finds its private conversations", async () => {
  const gina = await person("gina", undefined, { password: "gina's secret", mode: "register" });
  await gina.locator("#me-nick.account").waitFor({ timeout: WAIT });
  await shows(gina, "Account gina created");
  const plain = nc();
  await plain.said("Welcome to the chatroom!");
  plain.send("/msg gina are you on your phone yet?");
  await gina.locator("#dms .buffer", { hasText: "guest" }).waitFor({ timeout: WAIT });

  // Her phone: a new device with nothing stored; the nick is in use, so it gets another, but
  // logs in to the same account and finds the conversation (CHATHISTORY TARGETS).
  const phone = await person("gina", { width: 390, height: 844 }, { password: "gina's secret", mode: "login" });
  await phone.locator("#me-nick.account").waitFor({ timeout: WAIT });
  assert.equal(await phone.locator("#me-nick").getAttribute("title"), "Logged in as gina");
  const dm = phone.locator("#dms .buffer", { hasText: "guest" });
  await dm.waitFor({ timeout: WAIT });
  await phone.click("#open-sidebar");
  await dm.click();
  await shows(phone, "are you on your phone yet?");

  // A wrong password: told so, and the chat goes on as a guest.
  const impostor = await person("gina", undefined, { password: "guess", mode: "login" });
  await shows(impostor, "Login failed");
  assert.equal(await impostor.locator("#me-nick.account").count(), 0, "not logged in");
  assert.equal(await impostor.evaluate(() => localStorage.getItem("charla.login") ?? sessionStorage.getItem("charla.login")), null, "the wrong password is not kept");

  plain.close();
  for (const page of [gina, phone, impostor]) await page.context().close();
});

test("a private server asks for its password before anything else", async () => {
  const privatePort = await freePort();
  const privateDir = mkdtempSync(path.join(tmpdir(), "charla-browser-private-"));
  const privateServer = await startServer(["--password", "clubhouse"], privatePort, privateDir);
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on("pageerror", (e) => assert.fail(`the page threw: ${e.message}`));
    await page.goto(`http://127.0.0.1:${privatePort}/`);
    await page.fill("#nick-input", "ivan");
    await page.press("#nick-input", "Enter");
    await page.locator("#welcome[open] #server-password-input").waitFor({ timeout: WAIT });
    assert.match(await page.locator("#welcome-error").innerText(), /private/);
    await page.fill("#server-password-input", "wrong");
    await page.press("#server-password-input", "Enter");
    await page.locator("#welcome-error", { hasText: "not right" }).waitFor({ timeout: WAIT });
    await page.fill("#server-password-input", "clubhouse");
    await page.press("#server-password-input", "Enter");
    await page.locator("#status.online").waitFor({ timeout: WAIT });
    await page.locator(".buffer.active", { hasText: "#lobby" }).waitFor({ timeout: WAIT });
    await say(page, "made it in");
    await shows(page, "made it in");
    await context.close();
  } finally {
    await stopServer(privateServer);
    rmSync(privateDir, { recursive: true, force: true });
  }
});

test("the page works over https, its WebSocket over wss, on the same port", async () => {
  const secure = await person("sealed", undefined, null, "https");
  assert.equal(await secure.evaluate(() => location.protocol), "https:");
  const plain = nc();
  await plain.said("Welcome to the chatroom!");
  await say(secure, "hello over https");
  await plain.said("<sealed> hello over https");
  plain.send("hello back in clear text");
  await shows(secure, "hello back in clear text");
  plain.close();
  await secure.context().close();
});

test("history after a reload, and scrolling back reaches the first message", async () => {
  const carol = await person("carol");
  const plain = nc();
  await plain.said("Welcome to the chatroom!");
  for (let i = 1; i <= 120; i++) plain.send(`history line ${i}`);
  await shows(carol, "history line 120");
  await carol.reload();
  await carol.locator("#status.online").waitFor({ timeout: WAIT });
  await shows(carol, "history line 120");
  assert.equal(await carol.locator("#log .text", { hasText: "history line 1" }).filter({ hasText: /^history line 1$/ }).count(), 0, "only the latest page at first");
  // Scroll up until the beginning of the room shows.
  const start = carol.locator("#log .start");
  for (let i = 0; i < 20 && !(await start.count()); i++) {
    await carol.locator("#log").evaluate((log) => {
      log.scrollTop = 0;
      log.dispatchEvent(new Event("scroll"));
    });
    await carol.waitForTimeout(200);
  }
  await start.waitFor({ timeout: WAIT });
  await shows(carol, "hello from alice");
  for (const n of [1, 60, 120]) {
    const line = carol.locator("#log .text").filter({ hasText: new RegExp(`^history line ${n}$`) });
    assert.equal(await line.count(), 1, `history line ${n} shown once`);
  }
  plain.close();
  await carol.context().close();
});

test("a page reconnects after a server restart and catches up without gaps or duplicates", async () => {
  const dave = await person("dave");
  await say(dave, "before the restart");
  await shows(dave, "before the restart");
  await stopServer(server);
  await dave.locator("#status.offline").waitFor({ timeout: WAIT });
  server = await startServer();
  // Said while the page is still away (it retries after a second or more).
  const plain = nc();
  await plain.said("Welcome to the chatroom!");
  plain.send("said while dave was away");
  await dave.locator("#status.online").waitFor({ timeout: 30_000 });
  await shows(dave, "said while dave was away");
  plain.send("said after dave came back");
  await shows(dave, "said after dave came back");
  for (const text of ["before the restart", "said while dave was away", "said after dave came back"]) {
    assert.equal(await dave.locator("#log .text", { hasText: text }).count(), 1, `"${text}" shown once`);
  }
  plain.close();
  await dave.context().close();
});

test("screenshots: desktop and phone", async () => {
  const erin = await person("erin");
  const frank = await person("frank", { width: 390, height: 844 });
  await say(erin, "/join #release");
  await erin.locator(".buffer.active", { hasText: "#release" }).waitFor({ timeout: WAIT });
  await say(erin, "/topic Release 2.4 — freeze on Thursday, ship on Friday");
  await say(frank, "/join #release");
  await frank.locator(".buffer.active", { hasText: "#release" }).waitFor({ timeout: WAIT });
  await say(erin, "Good morning! The build is green again 🎉");
  await say(erin, "Changelog draft: https://example.org/release-notes");
  await say(frank, "Nice. Is the release still planned for Friday?");
  await say(erin, "Yes. Remaining:\n- translations\n- the upgrade notes");
  await say(frank, "/me brings coffee");
  await shows(erin, "brings coffee");
  const green = frank.locator("#log .msg", { hasText: "build is green" });
  await green.hover();
  await green.locator(".react-button").click();
  await frank.locator(".picker button", { hasText: "👍" }).click();
  await erin.locator("#log .reaction", { hasText: "👍 1" }).waitFor({ timeout: WAIT });
  await say(frank, "/msg erin can you review my translation PR?");
  await erin.locator("#dms .buffer .badge").waitFor({ timeout: WAIT });
  // On a phone the rooms are in a drawer.
  await frank.click("#open-sidebar");
  await frank.locator("#rooms .buffer", { hasText: "#release" }).click();
  await frank.locator(".app:not(.show-sidebar)").waitFor({ timeout: WAIT });
  // The drawer slides away: the screenshot waits until it is out of sight.
  await frank.waitForFunction(() => document.getElementById("sidebar").getBoundingClientRect().right <= 0, null, { timeout: WAIT });
  await erin.fill("#input", "On it");
  await erin.dispatchEvent("#input", "input");
  await frank.locator("#typing", { hasText: "erin is typing" }).waitFor({ timeout: WAIT });
  await erin.screenshot({ path: path.join(shots, "desktop-1280x800.png") });
  await frank.screenshot({ path: path.join(shots, "phone-390x844.png") });
  await frank.click("#open-sidebar");
  await frank.locator(".app.show-sidebar").waitFor({ timeout: WAIT });
  await frank.waitForTimeout(300);
  await frank.screenshot({ path: path.join(shots, "phone-390x844-sidebar.png") });
  // A newcomer's first sight: the welcome dialog.
  const newcomer = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
  await newcomer.goto(`http://127.0.0.1:${port}/`);
  await newcomer.locator("#welcome[open]").waitFor({ timeout: WAIT });
  await newcomer.screenshot({ path: path.join(shots, "phone-390x844-welcome.png") });
  await newcomer.context().close();
  await erin.emulateMedia({ colorScheme: "dark" });
  await erin.screenshot({ path: path.join(shots, "desktop-1280x800-dark.png") });
  await erin.context().close();
  await frank.context().close();
});
