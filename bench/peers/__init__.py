"""Other people's style-transfer programs, run side by side with stylize by bench/bench_quality.py."""
