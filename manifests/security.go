package manifests

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Files of the control plane's security material: the etcd CA, the
// front-proxy CA and its client (the aggregation layer), the kubelet's
// serving certificate, and the configuration of encryption at rest, all
// under the PKI directory (mounted read-only into the apiserver).
const (
	EtcdCACert            = "etcd/ca.crt"
	EtcdCAKey             = "etcd/ca.key"
	FrontProxyCACert      = "front-proxy-ca.crt"
	FrontProxyCAKey       = "front-proxy-ca.key"
	FrontProxyClientCert  = "front-proxy-client.crt"
	FrontProxyClientKey   = "front-proxy-client.key"
	KubeletServingCert    = "kubelet-serving.crt"
	KubeletServingKey     = "kubelet-serving.key"
	EncryptionConfigFile  = "encryption-config.yaml"
	AuditPolicyFile       = "audit-policy.yaml"
	FrontProxyClientName  = "front-proxy-client"
	ClusterAdminsGroup    = "knode:cluster-admins"
	clusterAdminsBindName = "knode:cluster-admins"
)

// encryptionConfiguration mirrors
// k8s.io/apiserver/pkg/apis/apiserver/v1.EncryptionConfiguration.
type encryptionConfiguration struct {
	typeMeta
	Resources []encryptedResources `json:"resources"`
}

type encryptedResources struct {
	Resources []string             `json:"resources"`
	Providers []encryptionProvider `json:"providers"`
}

// encryptionProvider holds one of secretbox or identity.
type encryptionProvider struct {
	Secretbox *secretbox `json:"secretbox,omitempty"`
	Identity  *struct{}  `json:"identity,omitempty"`
}

type secretbox struct {
	Keys []encryptionKey `json:"keys"`
}

type encryptionKey struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// EncryptionKeyName names a key in the stored data (etcd values start
// k8s:enc:secretbox:v1:<name>:): "knode-" and the first 8 hex digits of the
// key's SHA-256, so that each key keeps its name through a rotation.
func EncryptionKeyName(key []byte) string {
	sum := sha256.Sum256(key)
	return "knode-" + hex.EncodeToString(sum[:4])
}

// EncryptionConfig renders the apiserver's EncryptionConfiguration: Secrets
// are written with secretbox under key (32 bytes); the identity provider
// after it still reads what was stored before encryption was on.
func EncryptionConfig(key []byte) []byte {
	return toYAML(encryptionConfiguration{
		typeMeta: typeMeta{APIVersion: "apiserver.config.k8s.io/v1", Kind: "EncryptionConfiguration"},
		Resources: []encryptedResources{{
			Resources: []string{"secrets"},
			Providers: []encryptionProvider{
				{Secretbox: &secretbox{Keys: []encryptionKey{{Name: EncryptionKeyName(key), Secret: base64.StdEncoding.EncodeToString(key)}}}},
				{Identity: &struct{}{}},
			},
		}},
	})
}

// auditPolicy mirrors k8s.io/apiserver/pkg/apis/audit/v1.Policy.
type auditPolicy struct {
	typeMeta
	OmitStages []string    `json:"omitStages"`
	Rules      []auditRule `json:"rules"`
}

type auditRule struct {
	Level           string       `json:"level"`
	Verbs           []string     `json:"verbs,omitempty"`
	Resources       []auditGroup `json:"resources,omitempty"`
	NonResourceURLs []string     `json:"nonResourceURLs,omitempty"`
}

type auditGroup struct {
	Group     string   `json:"group"`
	Resources []string `json:"resources,omitempty"`
}

// AuditPolicy renders the apiserver's audit policy: every request at the
// Metadata level (who did what to which object, never a body, so no Secret
// leaks into the log), except the health probes and the constant
// leader-election lease renewals, which would drown the rest.
func AuditPolicy() []byte {
	return toYAML(auditPolicy{
		typeMeta:   typeMeta{APIVersion: "audit.k8s.io/v1", Kind: "Policy"},
		OmitStages: []string{"RequestReceived"},
		Rules: []auditRule{
			{Level: "None", NonResourceURLs: []string{"/healthz*", "/livez*", "/readyz*", "/version"}},
			{Level: "None", Verbs: []string{"get", "update"}, Resources: []auditGroup{{Group: "coordination.k8s.io", Resources: []string{"leases"}}}},
			{Level: "Metadata"},
		},
	})
}

// AdminBinding renders the ClusterRoleBinding that makes admin.conf's group
// cluster-admin. Unlike system:masters (super-admin.conf), a binding can be
// deleted: a leaked admin.conf is revoked by removing it, as kubeadm's
// kubeadm:cluster-admins.
func AdminBinding() []byte { return AdminBindingObject().YAML }

// AdminBindingObject is AdminBinding's object, for a server-side apply.
func AdminBindingObject() Object {
	b := clusterRoleBinding{
		typeMeta: typeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		Metadata: objectMeta{Name: clusterAdminsBindName},
		RoleRef:  roleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []subject{{Kind: "Group", Name: ClusterAdminsGroup, APIGroup: "rbac.authorization.k8s.io"}},
	}
	return object(b.typeMeta, b.Metadata, b)
}
