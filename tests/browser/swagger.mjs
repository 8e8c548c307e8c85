// Opens Swagger UI in Debian's Chromium, checks both modules' operations are
// listed, sees a write refused without a token, gives the token to
// Authorize, and uses "Try it out" with the example bodies as shown to
// create a port, read it back, patch it through its If-Match field (a
// stale entity tag first, then the current one), and create a laptop that
// lists it (a call that crosses the module boundary).
// Usage: node swagger.mjs http://127.0.0.1:PORT TOKEN
import { chromium } from 'playwright-core';

const base = process.argv[2];
const token = process.argv[3];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function tryOut(page, operationId, fill, opened = false) {
  const block = page.locator(`#operations-${operationId.tag}-${operationId.id}`);
  if (!opened) {
    await block.locator('.opblock-summary').first().click();
    await block.getByRole('button', { name: 'Try it out' }).click();
  }
  await fill(block);
  if (opened) {
    // The last response is still shown: cleared, it cannot be read as this one's.
    await block.getByRole('button', { name: 'Clear' }).click();
    await block.locator('.live-responses-table').waitFor({ state: 'detached', timeout: 15000 });
  }
  await block.getByRole('button', { name: 'Execute' }).click();
  const status = block.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ timeout: 15000 });
  const code = (await status.innerText()).trim();
  const body = await block.locator('.live-responses-table .response-col_description pre').first().innerText();
  console.log(`${operationId.id}: ${code}`);
  return { code, body };
}

try {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  await page.locator('.opblock').first().waitFor({ timeout: 15000 });
  for (const id of ['list_ports', 'create_port', 'list_laptops', 'create_laptop']) {
    const count = await page.locator(`[id$="-${id}"]`).count();
    if (count === 0) throw new Error(`operation ${id} is not listed`);
    console.log(`listed: ${id}`);
  }

  // The example body, as shown, and no token yet.
  const asExample = async () => {};
  await tryOut(page, { tag: 'ports', id: 'create_port' }, asExample);

  await page.locator('.auth-wrapper button.authorize').click();
  const dialog = page.locator('.dialog-ux');
  await dialog.locator('input').first().fill(token);
  await dialog.locator('button.authorize').click();
  await dialog.locator('button.btn-done').click();
  console.log('authorized');

  // The same operation, still open, executed again.
  const created = await tryOut(page, { tag: 'ports', id: 'create_port' }, asExample, true);
  const id = JSON.parse(created.body).id;

  await tryOut(page, { tag: 'ports', id: 'get_port' }, async (block) => {
    await block.locator('input[placeholder="id"]').fill(String(id));
  });

  // If-Match is a header parameter with a field of its own: a stale entity
  // tag is refused with 412, the port's current one ("1", just created) writes.
  const patch = { tag: 'ports', id: 'patch_port' };
  await tryOut(page, patch, async (block) => {
    await block.locator('input[placeholder="id"]').fill(String(id));
    await block.locator('input[placeholder="If-Match"]').fill('"0"');
  });
  await tryOut(page, patch, async (block) => {
    await block.locator('input[placeholder="If-Match"]').fill('"1"');
  }, true);

  await tryOut(page, { tag: 'laptops', id: 'create_laptop' }, asExample);
  await page.screenshot({ path: process.env.SCREENSHOT ?? '/tmp/swagger-ui.png', fullPage: false });
} finally {
  await browser.close();
}
