// The browser side of the staff UI's recorder (controller/ui/recorder.py): microphone → MediaRecorder
// (WebM/Opus where the browser has it), elapsed time and a live level meter, then listening, trimming
// (a range in seconds over the waveform drawn from the levels seen while recording) and saving.
//
// Nothing is cut here: on "save" the page is told the part to keep ("save" event, {start, end, duration});
// once the page has checked its form it calls `upload()`, which hands the whole recording to the hidden
// NiceGUI upload element (same route, same size limit as a chosen file) and the server cuts and ingests it.
// Every text comes from Python (`texts`), in Vietnamese.
export default {
  template: `
    <div class="tt-recorder column q-gutter-y-sm" style="width: 100%">
      <div v-if="message" class="text-negative text-body2 q-pa-sm rounded-borders bg-red-1"
           data-testid="recorder-message">{{ message }}</div>
      <div v-if="state === 'idle' || state === 'asking'" class="row items-center q-gutter-sm">
        <q-btn color="red-8" icon="mic" :label="texts.record" :loading="state === 'asking'" @click="begin"
               data-testid="recorder-record" />
        <span class="text-caption text-grey-8">{{ texts.hint }}</span>
      </div>
      <div v-if="state === 'recording'" class="column q-gutter-y-xs" data-testid="recorder-recording">
        <div class="row items-center q-gutter-sm no-wrap">
          <q-icon name="fiber_manual_record" color="red-8" size="sm" />
          <span class="text-subtitle1" style="font-variant-numeric: tabular-nums" data-testid="recorder-elapsed"
                :aria-label="texts.elapsed">{{ clock(elapsed) }} / {{ clock(maxS) }}</span>
          <q-space />
          <q-btn color="grey-9" icon="stop" :label="texts.stop" @click="finish" data-testid="recorder-stop" />
        </div>
        <q-linear-progress :value="level" size="14px" :color="level > 0.9 ? 'red-7' : 'green-7'"
                           track-color="grey-3" :aria-label="texts.level" data-testid="recorder-level"
                           :data-level="level.toFixed(2)" instant-feedback />
        <span class="text-caption text-grey-8">{{ texts.recording_hint }}</span>
      </div>
      <div v-show="state === 'recorded' || state === 'saving'" class="column q-gutter-y-sm"
           data-testid="recorder-recorded">
        <div class="text-body2" data-testid="recorder-duration">{{ format(texts.recorded, {duration: clock(duration)}) }}</div>
        <canvas ref="wave" height="56" style="width: 100%; height: 56px; display: block"
                class="rounded-borders bg-grey-2"></canvas>
        <q-range v-model="range" :min="0" :max="rangeMax" :step="0.1" label color="teal-8" :disable="state === 'saving'"
                 :left-label-value="clock(range.min, true)" :right-label-value="clock(range.max, true)"
                 @update:model-value="draw" data-testid="recorder-range" />
        <div class="row q-col-gutter-sm">
          <q-input class="col-6 col-sm-3" type="number" dense outlined :label="texts.start" :step="0.1"
                   :model-value="range.min" @change="setStart" :disable="state === 'saving'"
                   data-testid="recorder-start" />
          <q-input class="col-6 col-sm-3" type="number" dense outlined :label="texts.end" :step="0.1"
                   :model-value="range.max" @change="setEnd" :disable="state === 'saving'"
                   data-testid="recorder-end" />
        </div>
        <div class="text-caption text-grey-8" data-testid="recorder-kept">
          {{ format(texts.kept, {start: clock(range.min, true), end: clock(range.max, true), length: clock(range.max - range.min, true)}) }}
        </div>
        <audio ref="audio" controls preload="auto" :src="url" style="width: 100%; max-width: 28rem; height: 40px"
               @timeupdate="watchEnd" @loadedmetadata="fixDuration" data-testid="recorder-audio"></audio>
        <div class="row q-gutter-sm">
          <q-btn outline color="teal-8" icon="play_arrow" :label="texts.listen_part" @click="playPart"
                 :disable="state === 'saving'" data-testid="recorder-listen" />
          <q-btn flat color="grey-9" icon="restart_alt" :label="texts.again" @click="discard"
                 :disable="state === 'saving'" data-testid="recorder-again" />
        </div>
        <slot></slot>
        <div class="row items-center q-gutter-sm">
          <q-btn color="teal-8" icon="save" :label="texts.save" :loading="state === 'saving'" @click="save"
                 data-testid="recorder-save" />
          <span v-if="state === 'saving'" class="text-teal-9 text-body2" data-testid="recorder-saving">{{ texts.saving }}</span>
        </div>
      </div>
    </div>
  `,
  props: {
    texts: Object,
    max_s: Number,
    uploader: String,
    filename: String,
  },
  data() {
    return {
      state: "idle", // idle | asking | recording | recorded | saving
      message: "",
      elapsed: 0,
      level: 0,
      duration: 0,
      range: { min: 0, max: 0 },
      url: null,
      levels: [], // one peak per LEVEL_STEP seconds, for the waveform
    };
  },
  computed: {
    maxS() {
      return this.max_s || 900;
    },
    rangeMax() {
      return Math.max(0.1, Math.round(this.duration * 10) / 10);
    },
  },
  beforeUnmount() {
    this.release();
    if (this.url) URL.revokeObjectURL(this.url);
  },
  methods: {
    format(text, values) {
      return (text || "").replace(/\{(\w+)\}/g, (_, key) => (key in values ? values[key] : ""));
    },
    clock(seconds, tenths) {
      const s = Math.max(0, seconds || 0);
      const m = Math.floor(s / 60);
      const rest = s - 60 * m;
      const whole = Math.floor(rest);
      let text = `${m}:${String(whole).padStart(2, "0")}`;
      if (tenths) text += "," + Math.floor((rest - whole) * 10 + 1e-6);
      return text;
    },
    mimeType() {
      const kinds = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
      return kinds.find((k) => window.MediaRecorder && MediaRecorder.isTypeSupported(k)) || "";
    },
    async begin() {
      this.message = "";
      if (!window.isSecureContext) return this.fail(this.texts.insecure);
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) {
        return this.fail(this.texts.unsupported);
      }
      this.state = "asking";
      try {
        // No automatic gain (the server sets the loudness once, for the whole recording) and no echo
        // cancellation (nothing plays while recording); the browser's noise suppression stays on.
        this.stream = await navigator.mediaDevices.getUserMedia({
          audio: { channelCount: 1, autoGainControl: false, echoCancellation: false, noiseSuppression: true },
        });
      } catch (e) {
        const name = (e && e.name) || "";
        if (name === "NotAllowedError" || name === "SecurityError") return this.fail(this.texts.denied);
        if (name === "NotFoundError" || name === "OverconstrainedError") return this.fail(this.texts.no_mic);
        if (name === "NotReadableError" || name === "AbortError") return this.fail(this.texts.mic_busy);
        return this.fail(this.format(this.texts.mic_failed, { error: name || String(e) }));
      }
      try {
        this.startRecording();
      } catch (e) {
        this.release();
        return this.fail(this.format(this.texts.mic_failed, { error: (e && e.name) || String(e) }));
      }
    },
    fail(text) {
      this.state = "idle";
      this.message = text;
    },
    startRecording() {
      const type = this.mimeType();
      this.recorder = new MediaRecorder(this.stream, type ? { mimeType: type, audioBitsPerSecond: 64000 } : {});
      this.chunks = [];
      this.recorder.ondataavailable = (e) => e.data && e.data.size && this.chunks.push(e.data);
      this.recorder.onstop = () => this.stopped();
      const AudioContext = window.AudioContext || window.webkitAudioContext;
      this.context = new AudioContext();
      const source = this.context.createMediaStreamSource(this.stream);
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 2048;
      source.connect(this.analyser);
      this.samples = new Float32Array(this.analyser.fftSize);
      this.levels = [];
      this.peak = 0;
      this.elapsed = 0;
      this.level = 0;
      this.recorder.start(1000);
      this.started = performance.now();
      this.state = "recording";
      this.timer = setInterval(() => this.tick(), 50);
    },
    tick() {
      this.analyser.getFloatTimeDomainData(this.samples);
      let peak = 0;
      for (const v of this.samples) peak = Math.max(peak, Math.abs(v));
      this.levels.push(peak);
      // The meter in dB (−60 … 0 dBFS → 0 … 1): speech at a good distance sits in the upper half.
      const db = 20 * Math.log10(Math.max(peak, 1e-6));
      this.level = Math.min(1, Math.max(0, (db + 60) / 60));
      this.elapsed = (performance.now() - this.started) / 1000;
      if (this.elapsed >= this.maxS) this.finish();
    },
    finish() {
      if (this.state !== "recording") return;
      this.duration = Math.min(this.maxS, (performance.now() - this.started) / 1000);
      clearInterval(this.timer);
      this.recorder.stop(); // → stopped(), once the last data has come
    },
    stopped() {
      this.blob = new Blob(this.chunks, { type: this.recorder.mimeType || "audio/webm" });
      this.chunks = [];
      this.release();
      if (this.url) URL.revokeObjectURL(this.url);
      this.url = URL.createObjectURL(this.blob);
      this.range = { min: 0, max: this.rangeMax };
      this.state = "recorded";
      this.$nextTick(() => this.draw());
    },
    release() {
      clearInterval(this.timer);
      if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
      if (this.context) this.context.close().catch(() => {});
      this.stream = this.context = null;
    },
    fixDuration() {
      // A MediaRecorder file has no duration in its header: Chromium says Infinity and cannot seek until it
      // has read to the end once.
      const audio = this.$refs.audio;
      if (audio && audio.duration === Infinity) {
        const back = () => {
          audio.removeEventListener("durationchange", back);
          audio.currentTime = 0;
        };
        audio.addEventListener("durationchange", back);
        audio.currentTime = 1e101;
      }
    },
    setStart(value) {
      const v = Math.min(Math.max(0, Number(value) || 0), this.range.max);
      this.range = { min: Math.round(v * 10) / 10, max: this.range.max };
      this.draw();
    },
    setEnd(value) {
      const v = Math.max(Math.min(this.rangeMax, Number(value) || 0), this.range.min);
      this.range = { min: this.range.min, max: Math.round(v * 10) / 10 };
      this.draw();
    },
    playPart() {
      const audio = this.$refs.audio;
      this.stopAt = this.range.max;
      audio.currentTime = this.range.min;
      audio.play().catch(() => {});
    },
    watchEnd() {
      const audio = this.$refs.audio;
      if (this.stopAt !== undefined && audio.currentTime >= this.stopAt) {
        audio.pause();
        this.stopAt = undefined;
      }
    },
    draw() {
      const canvas = this.$refs.wave;
      if (!canvas || !canvas.clientWidth) return;
      const width = (canvas.width = canvas.clientWidth);
      const height = canvas.height;
      const g = canvas.getContext("2d");
      g.clearRect(0, 0, width, height);
      const n = this.levels.length;
      const keep = [this.range.min / (this.duration || 1), this.range.max / (this.duration || 1)];
      for (let x = 0; x < width; x++) {
        const from = Math.floor((x / width) * n);
        const to = Math.max(from + 1, Math.floor(((x + 1) / width) * n));
        let peak = 0;
        for (let i = from; i < to && i < n; i++) peak = Math.max(peak, this.levels[i]);
        const h = Math.max(1, Math.min(1, peak) * (height - 4));
        const inside = x / width >= keep[0] && x / width <= keep[1];
        g.fillStyle = inside ? "#00796b" : "#bdbdbd";
        g.fillRect(x, (height - h) / 2, 1, h);
      }
    },
    discard() {
      const audio = this.$refs.audio;
      if (audio) audio.pause();
      if (this.url) URL.revokeObjectURL(this.url);
      this.url = null;
      this.blob = null;
      this.message = "";
      this.state = "idle";
    },
    save() {
      if (!this.blob || this.state !== "recorded") return;
      this.$emit("save", { start: this.range.min, end: this.range.max, duration: this.duration,
                           size: this.blob.size, type: this.blob.type });
    },
    upload() {
      // Called by the page once it has checked its form: the recording goes up like a chosen file.
      const type = this.blob.type || "audio/webm";
      const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
      const file = new File([this.blob], `${this.filename || "ghi-am"}.${ext}`, { type });
      this.state = "saving";
      getElement(this.uploader).$refs.qRef.addFiles([file]);
    },
    done(keep) {
      // The page's answer: saved (back to the start) or refused (the recording is kept, to try again).
      if (keep) this.state = "recorded";
      else this.discard();
    },
  },
};
