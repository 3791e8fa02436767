import pytest
from tests.fixtures.browser import open_and_run_notebook, save_screenshot

@pytest.mark.browser
async def test_smoke(browser_page, lab_server, artifacts_dir):
    url = lab_server.write_notebook("smoke.ipynb", ["import ipywidgets as w\nw.Button(description='hello-widget')", "import os; print(os.getuid(), os.environ.get('SLURM_CONF'))"])
    await open_and_run_notebook(browser_page, url, wait_for="button:has-text('hello-widget')")
    await save_screenshot(browser_page, artifacts_dir, "smoke")
    print(await browser_page.locator(".jp-OutputArea-output").all_text_contents())

def test_sync_after():
    import asyncio
    assert asyncio.run(asyncio.sleep(0, 1)) == 1

async def test_async_after():
    import asyncio
    await asyncio.sleep(0)
