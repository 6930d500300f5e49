module github.com/cgr-helper/docker-credential-cgr/test/kubelet-config

go 1.26.0
