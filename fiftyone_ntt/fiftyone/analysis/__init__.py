"""Visual error analysis: predictions, references and negatives on FiftyOne's embeddings map
and in a similarity index (issue 22; docs/method.md §15). Above ``runs`` (it reads what runs
wrote) and below ``app`` (the panel's actions call it)."""
