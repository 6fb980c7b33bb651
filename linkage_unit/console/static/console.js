// pacelink console: live run progress, the audit log's "verify again", and the partner's
// local join of a release to its key map. Plain JavaScript, no library, nothing fetched
// from elsewhere (the pages' Content-Security-Policy allows scripts from the unit only).
"use strict";

// ------------------------------------------------------------------ live run progress
// Elements with data-live="<status URL>" are refreshed every second while their run is
// queued or running; with data-reload the page reloads once the run ends (to show charts).
function watchRun(el) {
  const url = el.dataset.live;
  const tick = async () => {
    let state;
    try {
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!answer.ok) return;
      state = await answer.json();
    } catch (e) {
      setTimeout(tick, 2000);
      return;
    }
    for (const field of el.querySelectorAll("[data-field]")) {
      const name = field.dataset.field;
      if (name === "progress") {
        field.value = state.progress;
        field.textContent = Math.round(100 * state.progress) + " %";
      } else if (name in state) {
        field.textContent = state[name];
      }
    }
    if (state.status === "queued" || state.status === "running") {
      setTimeout(tick, 1000);
    } else if (el.dataset.reload) {
      window.location.reload();
    } else {
      for (const bar of el.querySelectorAll("progress")) bar.remove();
    }
  };
  setTimeout(tick, 1000);
}

// ------------------------------------------------------------------- audit: verify now
function watchVerify(button) {
  button.addEventListener("click", async () => {
    const out = document.getElementById("verify-result");
    out.textContent = "Checking…";
    const answer = await fetch(button.dataset.url, { credentials: "same-origin", cache: "no-store" });
    const report = await answer.json();
    out.className = report.ok ? "ok" : "error";
    out.textContent = report.ok
      ? `Intact: all ${report.entries.toLocaleString("en-GB")} entries and their hash chain check out (checked ${new Date().toLocaleTimeString("en-GB")}).`
      : "NOT intact: " + report.problems.join("; ");
  });
}

// ------------------------------------------------------ the partner's join, in the browser
// The same rules as the encoder's key map (encoder/keymap.py) and `pacelink results`
// (linkage_unit/commands.py): a test downloads with this code in Chromium and compares the
// file byte for byte with what the command writes.

const TRIGGERS = ["=", "+", "-", "@", "\t", "\r", "'"];
const NUMBER = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const LINKAGE_ID = /^[0-9a-f]{8,64}$/;
const FLAG = /^[01]$/;
const DECOY_LOCAL_ID = "";

function needsQuote(value) {
  return TRIGGERS.some((t) => value.startsWith(t)) && (value[0] === "'" || !NUMBER.test(value));
}
const spreadsheetSafe = (value) => (needsQuote(value) ? "'" + value : value);
const fromSpreadsheetSafe = (value) =>
  value.startsWith("'") && needsQuote(value.slice(1)) ? value.slice(1) : value;

// Python's csv.reader (excel dialect): quoted fields, doubled quotes, CRLF or LF rows.
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false, inQuotes = false, i = 0;
  const endField = () => { row.push(field); field = ""; quoted = false; };
  const endRow = () => { endField(); rows.push(row); row = []; };
  while (i < text.length) {
    const c = text[i];
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        inQuotes = false; i += 1; continue;
      }
      field += c; i += 1; continue;
    }
    if (c === '"' && field === "" && !quoted) { inQuotes = true; quoted = true; i += 1; continue; }
    if (c === ",") { endField(); i += 1; continue; }
    if (c === "\r" || c === "\n") {
      endRow();
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    field += c; i += 1;
  }
  if (inQuotes) throw new Error("unexpected end of data");
  if (field !== "" || quoted || row.length) endRow();
  return rows;
}

// Python's csv.writer (excel dialect, QUOTE_MINIMAL, CRLF).
function csvField(value) {
  return /[",\r\n]/.test(value) ? '"' + value.replaceAll('"', '""') + '"' : value;
}

function readKeyMap(name, text) {
  let rows;
  try { rows = parseCsv(text); } catch (e) { throw new Error(`${name}: not valid CSV`); }
  if (!rows.length || rows[0].length !== 2 || rows[0][0] !== "row" || rows[0][1] !== "local_id") {
    throw new Error(`${name}: not a key map (expected the header row,local_id)`);
  }
  const ids = [];
  for (let k = 1; k < rows.length; k++) {
    const record = rows[k];
    if (record.length !== 2) throw new Error(`${name}, line ${k + 1}: ${record.length} fields where row,local_id has 2`);
    if (record[0] !== String(ids.length)) throw new Error(`${name}, line ${k + 1}: expected row ${ids.length} (rows count from 0 without gaps)`);
    ids.push(fromSpreadsheetSafe(record[1]));
  }
  return ids;
}

function joinRelease(release, answer, local, keysName, upload) {
  const other = release.startsWith("flags:") ? release.slice(6) : null;
  const column = other === null ? "linkage_id" : `in_${other}`;
  const expected = other === null ? LINKAGE_ID : FLAG;
  const lines = answer.split(/\r\n|\r|\n/);
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  const out = ["local_id," + csvField(spreadsheetSafe(column))];
  let previous = -1;
  for (let n = 1; n < lines.length; n++) {
    const record = lines[n].split(",");
    if (record.length !== 3 || !/^[0-9]+$/.test(record[1])) throw new Error(`the unit's answer is malformed at line ${n + 1}; nothing was written`);
    const row = Number(record[1]), value = record[2];
    if (row <= previous || row >= local.length) {
      throw new Error(`the unit's answer has row ${row} out of order or beyond the ${local.length.toLocaleString("en-GB")} rows of ${keysName}: is this the key map of upload ${upload}?`);
    }
    if (!expected.test(value)) throw new Error(`the unit's answer has a malformed ${column} at row ${row}; nothing was written`);
    previous = row;
    // A decoy row (empty local ID: the schema's hardening made it up) is no one's record.
    if (local[row] === DECOY_LOCAL_ID) continue;
    out.push(csvField(spreadsheetSafe(local[row])) + "," + csvField(value));
  }
  const written = out.length - 1;
  const records = local.filter((id) => id !== DECOY_LOCAL_ID).length;
  return { text: out.map((line) => line + "\r\n").join(""), rows: written, gone: records - written };
}

function watchJoin(form) {
  const status = document.getElementById("join-status");
  const keysInput = document.getElementById("join-keys");
  const uploadSelect = document.getElementById("join-upload");
  const decode = async (file) => new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(await file.arrayBuffer());
  keysInput.addEventListener("change", async () => {
    // Preselect the upload whose record count is the key map's row count, when only one is.
    const file = keysInput.files[0];
    if (!file) return;
    try {
      const rows = readKeyMap(file.name, await decode(file)).length;
      const fits = [...uploadSelect.options].filter((o) => Number(o.dataset.records) === rows);
      if (fits.length === 1) uploadSelect.value = fits[0].value;
    } catch (e) { /* reported on submit */ }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.className = "";
    const file = keysInput.files[0];
    const upload = uploadSelect.value;
    const release = document.getElementById("join-release").value;
    try {
      if (!file) throw new Error("choose the key map (OUT.keys.csv) first");
      let text;
      try { text = await decode(file); } catch (e) { throw new Error(`${file.name}: not UTF-8 text`); }
      const local = readKeyMap(file.name, text);
      status.textContent = "Fetching the release…";
      const url = `${form.dataset.base}/${release.replace(":", "/")}?upload=${encodeURIComponent(upload)}`;
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!answer.ok) {
        let reason = answer.statusText;
        const body = await answer.text();
        const found = /id="error-message">([^<]*)</.exec(body);
        if (found) reason = found[1];
        throw new Error(`the unit refused (${answer.status}): ${reason}`);
      }
      const joined = joinRelease(release, await answer.text(), local, file.name, upload);
      const blob = new Blob([joined.text], { type: "text/csv;charset=utf-8" });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = release === "mapping" ? "mapping.csv" : `${release.replace(":", "-")}.csv`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      const note = joined.gone ? ` (${joined.gone.toLocaleString("en-GB")} of the key map's records were withdrawn since)` : "";
      status.textContent = `Wrote ${joined.rows.toLocaleString("en-GB")} rows to ${link.download}${note}.`;
      status.className = "ok";
    } catch (e) {
      status.textContent = "Nothing was written: " + e.message;
      status.className = "error";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-live]")) watchRun(el);
  const verify = document.getElementById("verify-now");
  if (verify) watchVerify(verify);
  const join = document.getElementById("join-form");
  if (join) watchJoin(join);
});
