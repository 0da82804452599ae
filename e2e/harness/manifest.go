package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/restmapper"
)

// DecodeManifest decodes every document of a YAML (or JSON) file into typed
// objects of client-go's scheme.
func DecodeManifest(path string) ([]runtime.Object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: decode: %w", path, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// stripComments drops YAML comment lines, to tell empty documents apart.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// CreateObjects creates the objects (namespaced ones in their own
// namespace, or in namespace when they name none) through the dynamic
// client, as kubectl create does: any kind of client-go's scheme the API
// server serves. Objects that exist already are left alone.
func (c *Cluster) CreateObjects(ctx context.Context, namespace string, objs []runtime.Object) error {
	dyn, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
	for _, obj := range objs {
		if err := createObject(ctx, dyn, mapper, namespace, obj); err != nil {
			return err
		}
	}
	return nil
}

// createObject creates one typed object: its kind from the scheme, its
// resource and scope from discovery.
func createObject(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, namespace string, obj runtime.Object) error {
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil {
		return fmt.Errorf("create %T: %w", obj, err)
	}
	gvk := gvks[0]
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("create %s: %w", gvk, err)
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fmt.Errorf("create %s: %w", gvk, err)
	}
	u := &unstructured.Unstructured{Object: content}
	u.SetGroupVersionKind(gvk)
	var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			ns = namespace
		}
		ri = dyn.Resource(mapping.Resource).Namespace(ns)
	}
	if _, err := ri.Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s %s: %w", gvk.Kind, u.GetName(), err)
	}
	return nil
}

// applyManifest decodes a manifest file and creates its objects.
func (c *Cluster) applyManifest(ctx context.Context, path string) error {
	objs, err := DecodeManifest(path)
	if err != nil {
		return err
	}
	return c.CreateObjects(ctx, "", objs)
}
