package stages

// SetServing tells the metrics which versions serve now: the champion's,
// and the canary's and shadow's when set. A version that stopped serving
// loses its per-version prequential gauges (driftline_model_prequential_*
// {model,version} are deleted, so dashboards and alert rules never read a
// replaced version's frozen value) and its window; later labels of its
// predictions (joined after it was replaced) no longer count. A version
// that serves again starts a fresh window. Until the first call every
// version counts. It is safe for concurrent use.
func (m *JoinMetrics) SetServing(versions ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.serving = make(map[string]bool, len(versions))
	for _, v := range versions {
		if v != "" {
			m.serving[v] = true
		}
	}
	for v := range m.preq {
		if m.serving[v] {
			continue
		}
		name := m.names[v]
		for _, g := range m.gauges() {
			g.DeleteLabelValues(name, v)
		}
		delete(m.preq, v)
		delete(m.names, v)
	}
}
