#!/usr/bin/python3
"""One training step of a zoo model in PyTorch, timed as `bin/lockstep bench step` times it.

Usage: torchvision_step.py MODEL --batch-size B --steps S --warmup W [--threads T]
                          [--precision fp32|bf16]

MODEL is a name of `bin/lockstep models`: the ImageNet ones are torchvision's (GoogLeNet with its
two auxiliary classifiers, weighted 0.3 in the loss as the zoo does; MobileNet v1, which torchvision
lacks, as the paper and the zoo define it); the seed models are written out below as the zoo
builds them. Random inputs and labels; a step is zero_grad, forward, cross-entropy, backward and
SGD with momentum 0.9 at 0.05 (the zoo's default optimizer). bf16 runs the forward pass and the
loss under torch.autocast("cpu", dtype=torch.bfloat16), as PyTorch's mixed precision on CPUs does.
Prints one line: `model=M batch_size=B parameters=N precision=P median_ms=X images_per_second=Y`.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # before torch loads libgomp

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """3x3 stem, BasicBlocks, global average pooling, fc: resnet18-cifar and resnet-mini."""

    def __init__(self, channels, stem, stages, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, stem, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU())
        layers, cin = [], stem
        for cout, stride, blocks in stages:
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def conv_net(channels, convs, pooled, fcs, classes=10):
    """Convolutions (out, kernel, padding) each with ReLU and a 2x2 max-pool, then dense layers."""
    layers, cin = [], channels
    for cout, kernel, padding in convs:
        layers += [nn.Conv2d(cin, cout, kernel, 1, padding), nn.ReLU(), nn.MaxPool2d(2)]
        cin = cout
    layers.append(nn.Flatten())
    width = pooled
    for out in fcs:
        layers += [nn.Linear(width, out), nn.ReLU()]
        width = out
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def mobilenet_v1(classes=1000):
    def bn_relu(cout):
        return [nn.BatchNorm2d(cout), nn.ReLU()]

    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
              (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
    layers, cin = [nn.Conv2d(3, 32, 3, 2, 1, bias=False)] + bn_relu(32), 32
    for cout, stride in blocks:
        layers += [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)] + bn_relu(cin)
        layers += [nn.Conv2d(cin, cout, 1, bias=False)] + bn_relu(cout)
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def build(name):
    """The model and its input's (channels, height, width)."""
    imagenet = (3, 224, 224)
    if name == 'googlenet':
        return torchvision.models.googlenet(num_classes=1000, aux_logits=True,
                                            init_weights=False), imagenet
    if name == 'mobilenet_v1':
        return mobilenet_v1(), imagenet
    if name in ('alexnet', 'vgg16', 'vgg19', 'resnet18', 'resnet34', 'resnet50', 'densenet121',
                'mobilenet_v2'):
        return getattr(torchvision.models, name)(num_classes=1000), imagenet
    if name == 'lenet':
        return conv_net(1, [(20, 5, 0), (50, 5, 0)], 50 * 4 * 4, [500]), (1, 28, 28)
    if name == 'lenet-cifar':
        return conv_net(3, [(6, 5, 0), (16, 5, 0)], 16 * 5 * 5, [120, 84]), (3, 32, 32)
    if name == 'feedforward':
        return conv_net(3, [], 3 * 32 * 32, [128, 32]), (3, 32, 32)
    if name == 'simple-cnn':
        return conv_net(3, [(32, 3, 1), (64, 3, 1)], 64 * 8 * 8, [128]), (3, 32, 32)
    if name == 'resnet18-cifar':
        stages = [(64, 1, 2), (128, 2, 2), (256, 2, 2), (512, 2, 2)]
        return SmallResNet(3, 64, stages), (3, 32, 32)
    if name == 'resnet-mini':
        return SmallResNet(1, 16, [(16, 2, 1), (32, 2, 1)]), (1, 28, 28)
    raise SystemExit('torchvision_step.py: no PyTorch counterpart of model ' + name)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model')
    p.add_argument('--batch-size', type=int, required=True)
    p.add_argument('--steps', type=int, required=True)
    p.add_argument('--warmup', type=int, required=True)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--precision', choices=('fp32', 'bf16'), default='fp32')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, shape = build(args.model)
    x = torch.randn(args.batch_size, *shape)
    out = model(x)
    classes = (out.logits if hasattr(out, 'logits') else out).shape[1]
    y = torch.randint(0, classes, (args.batch_size,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.precision == 'bf16'):
            out = model(x)
            if hasattr(out, 'aux_logits1'):
                loss = (F.cross_entropy(out.logits, y)
                        + 0.3 * F.cross_entropy(out.aux_logits1, y)
                        + 0.3 * F.cross_entropy(out.aux_logits2, y))
            else:
                loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print('model=%s batch_size=%d parameters=%d threads=%d torch=%s precision=%s median_ms=%.2f '
          'images_per_second=%.1f'
          % (args.model, args.batch_size, sum(p.numel() for p in model.parameters()),
             torch.get_num_threads(), torch.__version__, args.precision, median * 1e3,
             args.batch_size / median),
          flush=True)


if __name__ == '__main__':
    main()
