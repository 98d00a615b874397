"""Durability and reliability: kills and resumes, load, retries, timeouts, hostile input, fuzzing."""
