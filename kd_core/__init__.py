"""KD Lab's engine: data, models, the distillation loss, training, evaluation and caching (no Streamlit)."""
