"""Named fallback chains and their message texts, from the TOML file `VERIFY_WORKFLOWS_FILE`
names: loaded and checked (`file`), evaluated per number (`conditions`), turned into a
verification's steps with a reason per step (`plan`), and held per process (`registry`)."""
