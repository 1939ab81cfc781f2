"""Wire dialects: thin translations between HTTP shapes and the domain."""
