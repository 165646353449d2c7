"""Looking at results and data: evaluation, model comparison, descriptor EDA, spectrogram views."""
