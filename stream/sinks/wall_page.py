"""The ``--serve`` page: a wall with one tile per source, plus the run's totals.

Each tile (``<article class="tile" data-source="NAME" data-state="live|reconnecting|down">``,
one template for all) shows its source's annotated frames and a caption with the state, recent
fps, latency p50 and the people in its last frame, and below it the source's latest event records
(``events`` in ``stats.json``).  The served HTML holds a tile per source known
at start (so the page lists them without a script); the script polls ``stats.json`` each second,
updates the tiles and adds one for any source it has not seen yet.  With up to ``STREAMING_TILES_MAX`` sources each tile is an ``<img>``
on the source's MJPEG (``stream/NAME.mjpg``); with more, browsers' limit of six connections per
host (HTTP/1.1) would leave tiles (and the stats poll) waiting forever, so tiles then fetch
single frames in turn (``stream/NAME.jpg?after=SEQ``, answered when a newer frame exists) and the
tile's name links to its MJPEG.  The grid keeps about square: 1 tile fills the page, 16 make 4x4.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

STREAMING_TILES_MAX = 4
EVENTS_SHOWN = 3          # recent event records under each tile (from stats.json's events section)
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} live</title>
<style>
  body { margin: 0; background: #111; color: #ddd; font: 14px/1.4 system-ui, sans-serif; }
  header { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; padding: 6px 12px; }
  h1 { font-size: 16px; margin: 0; }
  #status { color: #999; }
  #wall { display: grid; gap: 8px; padding: 0 8px 8px;
          grid-template-columns: repeat(var(--columns, 1), minmax(0, 1fr)); }
  @media (max-width: 640px) { #wall { grid-template-columns: minmax(0, 1fr); } }
  .tile { background: #000; border: 2px solid #333; border-radius: 4px; overflow: hidden; min-width: 0; }
  .tile[data-state="live"] { border-color: #2a7; }
  .tile[data-state="reconnecting"] { border-color: #d90; }
  .tile[data-state="down"] { border-color: #d33; }
  .tile img { display: block; width: 100%; aspect-ratio: 4 / 3; object-fit: contain; background: #000;
              max-height: calc((100vh - 64px) / var(--rows, 1) - 44px); }
  .tile:not([data-state="live"]) img { opacity: 0.4; }   /* its last frame, no longer live */
  .caption { display: flex; flex-wrap: wrap; gap: 2px 12px; padding: 4px 8px;
             font-variant-numeric: tabular-nums; }
  .name { font-weight: 600; color: #fff; }
  .events { list-style: none; margin: 0; padding: 0 8px 4px; font-size: 12px; color: #fc6; }
  .events:empty { display: none; }
  .state { text-transform: uppercase; font-size: 12px; }
  [data-state="live"] .state { color: #3c8; }
  [data-state="reconnecting"] .state { color: #fb3; }
  [data-state="down"] .state { color: #f55; }
  details { padding: 0 12px 12px; }
  table { border-collapse: collapse; }
  th, td { text-align: left; padding: 2px 10px 2px 0; font-variant-numeric: tabular-nums; }
  th { color: #999; font-weight: normal; }
</style>
</head>
<body>
<header>
  <h1>{{title}}</h1>
  <span id="summary"></span>
  <span id="status">waiting for stats</span>
</header>
<main id="wall">{{tiles}}</main>
<template id="tile">{{tile}}</template>
<details id="totals">
  <summary>totals and stage timings</summary>
  <table id="stats">
    <tbody>
      <tr><th>frames</th><td id="frames">-</td></tr>
      <tr><th>fps</th><td id="fps">-</td></tr>
      <tr><th>latency p50 / p95 (ms)</th><td id="latency">-</td></tr>
      <tr><th>dropped</th><td id="dropped">-</td></tr>
      <tr><th>reconnects</th><td id="reconnects">-</td></tr>
      <tr><th>wall (s)</th><td id="wall-s">-</td></tr>
    </tbody>
    <tbody id="stages"></tbody>
  </table>
</details>
<script id="config" type="application/json">{{config}}</script>
<script>
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const wall = document.getElementById("wall");
const tiles = new Map();
let updates = 0;
const fixed = (value, digits) => (typeof value === "number" ? value.toFixed(digits) : "-");
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const withQuery = (path, extra) => {
  const params = new URLSearchParams(config.query);
  for (const [key, value] of Object.entries(extra || {})) params.set(key, value);
  const text = params.toString();
  return text ? path + "?" + text : path;
};
const streamPath = (name, kind) => "stream/" + encodeURIComponent(name) + "." + kind;

function layout() {
  const columns = Math.max(1, Math.ceil(Math.sqrt(tiles.size)));
  wall.style.setProperty("--columns", columns);
  wall.style.setProperty("--rows", Math.max(1, Math.ceil(tiles.size / columns)));
}

function wireTile(tile) {
  const name = tile.dataset.source;
  const image = tile.querySelector("img");
  tile.querySelector(".name").href = withQuery(streamPath(name, "mjpg"));
  tiles.set(name, tile);
  layout();
  if (config.names.length <= config.streaming_max) {
    image.addEventListener("load", () => { tile.dataset.frames = "1"; });
    image.src = withQuery(streamPath(name, "mjpg"));
  } else {
    followFrames(tile, image, name);
  }
  return tile;
}

function addTile(name) {
  const tile = document.getElementById("tile").content.firstElementChild.cloneNode(true);
  tile.dataset.source = name;
  tile.querySelector("img").alt = name + " live";
  tile.querySelector(".name").textContent = name;
  wall.append(tile);
  return wireTile(tile);
}

async function followFrames(tile, image, name) {
  let seq = 0;
  let shown = null;
  for (;;) {
    try {
      const response = await fetch(withQuery(streamPath(name, "jpg"), {after: seq}), {cache: "no-store"});
      if (response.status === 200) {
        seq = Number(response.headers.get("X-Frame-Seq")) || seq;
        const url = URL.createObjectURL(await response.blob());
        image.src = url;
        if (shown) URL.revokeObjectURL(shown);
        shown = url;
        tile.dataset.frames = String(Number(tile.dataset.frames) + 1);
      } else if (response.status !== 204) {
        await sleep(1000);
      }
      if (tile.dataset.state !== "live") await sleep(1000);
    } catch (error) {
      await sleep(1000);
    }
  }
}

function eventText(record) {
  const who = record.person_id >= 0 ? " #" + record.person_id : "";
  const extra = record.direction ? " " + record.direction : (record.count != null ? " (" + record.count + ")" : "");
  return (record.time || "").slice(11, 19) + " " + record.rule + " " + record.type + extra + who;
}

function showEvents(tile, recent) {
  const list = tile.querySelector(".events");
  const shown = (recent || []).slice(-config.events_shown).reverse();
  list.replaceChildren(...shown.map((record) => {
    const item = document.createElement("li");
    item.dataset.type = record.type;
    item.textContent = eventText(record);
    return item;
  }));
}

function showTile(tile, section) {
  const latency = section.latency_ms || {};
  tile.dataset.state = section.state || "unknown";
  tile.querySelector(".state").textContent = section.state || "-";
  tile.querySelector(".fps").textContent = fixed(section.fps_recent, 1) + " fps";
  tile.querySelector(".latency").textContent = fixed(latency.p50, 0) + " ms";
  tile.querySelector(".people").textContent = (section.people ?? "-") + " people";
  tile.title = section.error || "";
}

function showTotals(stats) {
  const latency = stats.latency_ms || {};
  document.getElementById("frames").textContent = stats.frames ?? "-";
  document.getElementById("fps").textContent = fixed(stats.fps, 1);
  document.getElementById("latency").textContent = fixed(latency.p50, 0) + " / " + fixed(latency.p95, 0);
  document.getElementById("dropped").textContent = stats.dropped ?? "-";
  document.getElementById("reconnects").textContent = stats.reconnects ?? "-";
  document.getElementById("wall-s").textContent = fixed(stats.wall_s, 1);
  const stages = document.getElementById("stages");
  stages.replaceChildren();
  for (const [stage, timing] of Object.entries(stats.stages || {})) {
    const row = stages.insertRow();
    const name = document.createElement("th");
    name.textContent = stage + " p50 / p95 (ms)";
    row.appendChild(name);
    row.insertCell().textContent = fixed(timing.p50_ms, 1) + " / " + fixed(timing.p95_ms, 1);
  }
}

function show(stats) {
  const sources = stats.sources || {};
  const events = (stats.events || {}).sources || {};
  for (const [name, section] of Object.entries(sources)) {
    const tile = tiles.get(name) || addTile(name);
    showTile(tile, section);
    showEvents(tile, (events[name] || {}).recent);
  }
  const live = Object.values(sources).filter((section) => section.state === "live").length;
  document.getElementById("summary").textContent =
    live + " of " + tiles.size + " live, " + fixed(stats.fps, 1) + " fps in all";
  showTotals(stats);
}

async function refresh() {
  try {
    const response = await fetch(withQuery("stats.json"), {cache: "no-store"});
    show(await response.json());
    updates += 1;
    document.getElementById("status").textContent = "stats updated " + updates + " times";
  } catch (error) {
    document.getElementById("status").textContent = "stats unavailable: " + error;
  }
}

for (const tile of wall.querySelectorAll(".tile")) wireTile(tile);
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""


TILE_TEMPLATE = ('<article class="tile" data-source="{name}" data-state="unknown" data-frames="0">'
                 '<img alt="{name} live"><div class="caption"><a class="name" target="_blank">{name}</a>'
                 '<span class="state">-</span><span class="fps">-</span><span class="latency">-</span>'
                 '<span class="people">-</span></div><ol class="events"></ol></article>')


def render_page(title: str, names: list[str], token: str | None = None,
                streaming_max: int = STREAMING_TILES_MAX) -> bytes:
    """The page for the sources ``names`` (more may appear later); ``token`` is added to every
    URL the page loads (``?token=``), so images and polls pass the access check."""
    config = {"names": list(names), "streaming_max": streaming_max, "events_shown": EVENTS_SHOWN,
              "query": urlencode({"token": token}) if token else ""}
    config_json = json.dumps(config).replace("<", "\\u003c")   # nothing can close the script
    values = {"title": html_escape(title), "config": config_json, "tile": TILE_TEMPLATE.format(name=""),
              "tiles": "\n".join(TILE_TEMPLATE.format(name=html_escape(name)) for name in names)}
    # One pass: text put in (a source name, say) is never read for placeholders again.
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], PAGE_TEMPLATE).encode()


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
