# Sourced by the zoo benchmarks: the models they time and how long each one's step is timed.
# IMAGENET: at IMAGENET_BATCH (8), 4 steps after 2; SEEDS at SEED_BATCH (64), 200 steps after 50
# (steps of a few milliseconds take a few hundred before the JIT has compiled the optimizer step),
# feedforward 2,000 after 500 (its step is ~1.3 ms once compiled, ~2 ms in its first few hundred:
# 200 after 50 measured the JIT's warm-up), resnet18-cifar 10 after 3. zoo_steps MODEL sets batch,
# steps and warmup.
IMAGENET=(alexnet vgg16 vgg19 resnet18 resnet34 resnet50 densenet121 googlenet mobilenet_v1
  mobilenet_v2)
SEEDS=(lenet lenet-cifar feedforward simple-cnn resnet18-cifar resnet-mini)
IMAGENET_BATCH=${IMAGENET_BATCH:-8}
SEED_BATCH=${SEED_BATCH:-64}
zoo_steps() {
  case $1 in
    resnet18-cifar) batch=$SEED_BATCH steps=10 warmup=3 ;;
    feedforward) batch=$SEED_BATCH steps=2000 warmup=500 ;;
    lenet | lenet-cifar | simple-cnn | resnet-mini)
      batch=$SEED_BATCH steps=200 warmup=50 ;;
    *) batch=$IMAGENET_BATCH steps=4 warmup=2 ;;
  esac
}
