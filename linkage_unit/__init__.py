"""pacelink linkage unit: matches encodings from many partners and releases what policy allows."""
