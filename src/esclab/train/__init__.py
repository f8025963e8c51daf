"""Training: the LightningModule, checkpoint bundles and the cross-validation runner."""
