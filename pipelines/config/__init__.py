"""A run's configuration: the typed keys (`settings`), the YAML/JSON files (`files`), the shared
command-line flags (`flags`) and the augmentation keys (`augmentation`)."""
