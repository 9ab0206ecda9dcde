"""Audio in and out: ingest, loudness normalisation, TTS engines, Vietnamese text normalisation.

Not built yet: this package is filled by the audio bulletins and TTS issue.
"""
