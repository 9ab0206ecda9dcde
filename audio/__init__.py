"""Audio in and out: probe and ingest uploads (`ingest`), loudness analysis and normalisation, the
content-addressed media store (`store`), TTS engines behind one interface (`tts`), Vietnamese text
normalisation (`vi_text`), chimes and announcement layout (`compose`), and running ffmpeg (`ffmpeg`).
Speaks files and bytes, never HTTP or MQTT.
"""
