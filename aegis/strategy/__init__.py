"""What a strategy sees and uses: incremental indicators over a symbol's closed candles."""
