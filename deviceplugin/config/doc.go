// Package config is the device plugin's versioned config file: the
// DevicePluginConfig document (apiVersion gpuslice.io/v1alpha1) that --config
// names and the sharing ConfigMap can carry. DecodeConfigFile decodes it
// strictly, with errors that name the bad field, and applies no defaults;
// package deviceplugin/app merges it under the command-line flags. The vgpu
// section is decoded by package deviceplugin/vgpu's own strict decoder.
package config
