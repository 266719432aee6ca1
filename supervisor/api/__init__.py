"""What user code imports: `@task` and the registry, the producer, results, `@periodic`."""
