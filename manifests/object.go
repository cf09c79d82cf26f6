package manifests

// Object is one rendered Kubernetes object with what a server-side apply
// needs to address it: its group/version, kind, namespace (empty when
// cluster-scoped) and name. YAML is its document, as toYAML renders it.
type Object struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	YAML       []byte
}

// object renders v, whose type and object meta are tm and m.
func object(tm typeMeta, m objectMeta, v any) Object {
	return Object{APIVersion: tm.APIVersion, Kind: tm.Kind, Namespace: m.Namespace, Name: m.Name, YAML: toYAML(v)}
}

// Stream joins the objects' documents into one multi-document YAML stream,
// in order (what `kubectl apply -f -` reads; the golden files hold it).
func Stream(objs ...Object) []byte {
	docs := make([][]byte, len(objs))
	for i, o := range objs {
		docs[i] = o.YAML
	}
	return joinDocs(docs...)
}
