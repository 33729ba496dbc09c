"""Recording (DESIGN §8): ffmpeg segments in date/hour folders, the recordings.db index,
retention (30 days + free-space floor, never on an untrusted clock), start-up reconcile,
and resumable clip uploads."""
