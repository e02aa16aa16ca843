//! Image decoding and encoding, input limits, atomic output files.
