"""Watching a page's WebRTC from the test: every RTCPeerConnection's configuration, and the
candidate types of the pairs its live connections use."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

# Runs in every frame before the page's own scripts (``page.add_init_script``): records each
# configuration given to an RTCPeerConnection, at construction and through
# setConfiguration, in ``window.__configs``, and each connection in ``window.__pcs``.
RECORD_RTC_CONFIGS = """(() => {
  const Native = window.RTCPeerConnection;
  const configs = (window.__configs = []);
  const pcs = (window.__pcs = []);
  const record = (via, config) => configs.push({ via, config: JSON.parse(JSON.stringify(config ?? null)) });
  class RecordedPeerConnection extends Native {
    constructor(config, ...rest) { record("constructor", config); super(config, ...rest); pcs.push(this); }
    setConfiguration(config) { record("setConfiguration", config); return super.setConfiguration(config); }
  }
  window.RTCPeerConnection = RecordedPeerConnection;
  window.webkitRTCPeerConnection = RecordedPeerConnection;
})();"""

_SELECTED_PAIRS = """async () => {
  const pairs = [];
  for (const pc of window.__pcs) {
    if (pc.connectionState !== "connected") continue;
    const stats = await pc.getStats();
    let id = null;
    stats.forEach((r) => { if (r.type === "transport" && r.selectedCandidatePairId) id = r.selectedCandidatePairId; });
    const pair = id && stats.get(id);
    if (!pair) continue;
    pairs.push([stats.get(pair.localCandidateId).candidateType,
                stats.get(pair.remoteCandidateId).candidateType]);
  }
  return pairs;
}"""


def selected_pairs(page: Page) -> list[list[str]]:
    """(local, remote) candidate types of each connected RTCPeerConnection's selected pair
    (needs RECORD_RTC_CONFIGS), e.g. ``[["relay", "relay"]]``."""
    result: list[list[str]] = page.evaluate(_SELECTED_PAIRS)
    return result


def recorded_configs(page: Page) -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = page.evaluate("() => window.__configs")
    return configs
