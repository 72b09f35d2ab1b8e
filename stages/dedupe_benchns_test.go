package stages

// setDedupeNamespace makes d keep its ids under the key prefix ns, as if
// built from a spec with that prefix (BenchmarkDedupe gives key sets fresh
// namespaces without building a new stage).
func setDedupeNamespace(d *Dedupe, ns string) {
	d.prefix, d.buckets = ns+"dedupe:", ns+"dedupe-bucket:"
}
