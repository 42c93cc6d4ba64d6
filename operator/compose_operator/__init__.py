"""compose-operator: run Compose applications with AI models on Kubernetes."""
