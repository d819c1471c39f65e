"""The ``finmlsec`` command line. Each module of this package that defines ``register(app)`` adds
its commands; commands stay thin calls into the library and import heavy libraries lazily."""
