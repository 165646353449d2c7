// genre-cnn web page: upload a song (or a microphone recording), show its genre probabilities.
// Served by `genre-cnn serve`; no external assets, so it works offline.
"use strict";

const COLOURS = ["#2457c5", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d5a97", "#e07a5f", "#3d405b",
  "#81b29a", "#f2cc8f", "#30638e", "#a0c4ff"];
const $ = (id) => document.getElementById(id);
let model = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("progress-box").hidden = true;
}

function clearMessages() {
  $("error").hidden = true;
  $("result").hidden = true;
}

async function loadModel() {
  try {
    const response = await fetch("/v1/model");
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    model = await response.json();
    $("model-line").textContent = `Model ${model.name} (${model.kind}) knows ${model.classes.length} genres: `
      + model.classes.join(", ") + ".";
    $("limits").textContent = `Up to ${model.limits.max_upload_mb} MB and ${Math.round(model.limits.max_seconds / 60)} minutes.`;
    $("explain-line").hidden = !model.explains;
  } catch (error) {
    $("model-line").textContent = `Could not read the model description (${error.message}).`;
  }
}

function upload(file, name) {
  clearMessages();
  const form = new FormData();
  form.append("file", file, name || file.name || "recording.wav");
  const timeline = model && model.makes_timelines;
  const explain = Boolean(model && model.explains && $("explain").checked);
  const request = new XMLHttpRequest();
  request.open("POST", `/v1/classify?top_k=${model ? model.classes.length : 3}&timeline=${timeline}&explain=${explain}`);
  request.responseType = "json";
  $("progress-box").hidden = false;
  $("progress").value = 0;
  $("progress-label").textContent = "Uploading…";
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) $("progress").value = Math.round(100 * event.loaded / event.total);
  };
  request.upload.onload = () => {
    $("progress").removeAttribute("value");  // indeterminate while the server listens
    $("progress-label").textContent = "Listening…";
  };
  request.onerror = () => showError("The upload failed: the server could not be reached.");
  request.onload = () => {
    const body = request.response || {};
    if (request.status === 200) {
      $("progress-box").hidden = true;
      showResult(body);
    } else {
      const retry = request.getResponseHeader("Retry-After");
      const detail = typeof body.detail === "string" ? body.detail : `the server answered ${request.status}`;
      showError(`${detail}${retry ? ` (try again in ${retry} s)` : ""}`);
    }
  };
  request.send(form);
}

function showResult(result) {
  $("song-name").textContent = result.path;
  $("top-genre").textContent = result.genre;
  const unsure = result.unsure && result.top.length > 1;
  $("result-detail").textContent = `Combined from ${result.n_chunks} chunk(s).`
    + (unsure ? ` Unsure: ${result.top[0].genre} or ${result.top[1].genre}, the model is not confident enough to choose.` : "")
    + (result.unfamiliar ? ` Unfamiliar: this is not like any song the model learned from (novelty ${result.novelty.toFixed(1)}), so its genre means little.` : "");
  const bars = $("bars");
  bars.replaceChildren();
  for (const { genre, probability } of result.top) {
    const row = document.createElement("div");
    row.className = "bar";
    row.setAttribute("role", "listitem");
    row.dataset.genre = genre;
    const percent = (100 * probability).toFixed(1);
    row.innerHTML = `<span class="name"></span><span class="track"><span class="fill"></span></span>`
      + `<span class="value">${percent} %</span>`;
    row.querySelector(".name").textContent = genre;
    row.querySelector(".fill").style.width = `${percent}%`;
    row.setAttribute("aria-label", `${genre}: ${percent} percent`);
    bars.appendChild(row);
  }
  showTimeline(result.timeline);
  showExplanation(result.explanation, result.genre);
  $("result").hidden = false;
}

function showExplanation(picture, genre) {
  const box = $("why-box");
  box.hidden = !picture;
  if (picture) {
    $("why").src = `data:image/png;base64,${picture}`;
    $("why").alt = `What pushed the song towards ${genre}: the regions of its spectrogram (or the descriptors) whose loss lowers ${genre}'s probability most.`;
  }
}

function showTimeline(timeline) {
  const box = $("timeline-box");
  if (!timeline || timeline.windows.length < 2) {
    box.hidden = true;
    return;
  }
  const colour = Object.fromEntries(timeline.classes.map((c, i) => [c, COLOURS[i % COLOURS.length]]));
  const chart = $("timeline");
  chart.replaceChildren();
  for (const window of timeline.windows) {
    const column = document.createElement("div");
    const p = window.genre ? window.probabilities[window.genre] : 0;
    column.style.height = `${Math.max(2, 100 * p)}%`;
    column.style.background = window.genre ? colour[window.genre] : "#ccc";
    column.title = `${clock(window.start)}–${clock(window.end)}: ${window.genre || "silent"}`
      + (window.genre ? ` ${(100 * p).toFixed(0)} %` : "");
    chart.appendChild(column);
  }
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-label", timeline.windows.map((w) => `${clock(w.start)} ${w.genre || "silent"}`).join(", "));
  $("legend").replaceChildren(...timeline.classes.map((c) => {
    const item = document.createElement("li");
    item.innerHTML = `<span style="background:${colour[c]}"></span>`;
    item.append(c);
    return item;
  }));
  box.hidden = false;
}

function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - 60 * minutes).toFixed(0).padStart(2, "0")}`;
}

// --- microphone: MediaRecorder, then decoded in the browser and sent as 16-bit WAV (any server decodes it)
let recorder = null;

async function toggleRecording() {
  const button = $("record");
  if (recorder) {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showError(`The microphone is not available (${error.message}).`);
    return;
  }
  const parts = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => parts.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    recorder = null;
    button.textContent = "Record from the microphone";
    button.classList.remove("recording");
    try {
      const context = new AudioContext();
      const audio = await context.decodeAudioData(await new Blob(parts).arrayBuffer());
      upload(new Blob([wav(audio)], { type: "audio/wav" }), "recording.wav");
    } catch (error) {
      showError(`The recording could not be read (${error.message}).`);
    }
  };
  recorder.start();
  button.textContent = "Stop recording and classify";
  button.classList.add("recording");
}

function wav(audio) {
  const samples = audio.getChannelData(0);
  const buffer = new ArrayBuffer(44 + 2 * samples.length);
  const view = new DataView(buffer);
  const text = (offset, s) => [...s].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, audio.sampleRate, true); view.setUint32(28, 2 * audio.sampleRate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * samples.length, true);
  samples.forEach((s, i) => view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return buffer;
}

document.addEventListener("DOMContentLoaded", () => {
  loadModel();
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) upload(event.target.files[0]);
    event.target.value = "";
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) upload(event.dataTransfer.files[0]);
  });
  if (window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    $("record").hidden = false;
    $("record").addEventListener("click", toggleRecording);
  }
});
