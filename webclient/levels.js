// Audio levels of a MediaStream with a WebAudio AnalyserNode (nothing is played through it).

export class LevelMeter {
  constructor(context, stream) {
    this.source = context.createMediaStreamSource(stream);
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
  }

  /** RMS of the most recent ~20 ms (1024 samples at 48 kHz), 0..1. */
  rms() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const value of this.samples) sum += value * value;
    return Math.sqrt(sum / this.samples.length);
  }

  disconnect() {
    this.source.disconnect();
  }
}

/** A level in 0..1 for a meter bar: -60 dBFS … 0 dBFS mapped linearly. */
export function meterFraction(rms) {
  if (rms <= 0) return 0;
  const db = 20 * Math.log10(rms);
  return Math.min(1, Math.max(0, (db + 60) / 60));
}
