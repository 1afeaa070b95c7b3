"""Trading: from an intent to the exact order Binance accepts (sizing first; orders, journal, risk to come)."""
