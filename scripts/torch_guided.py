"""The guided denoisers in PyTorch, for `scripts/torch_train_step.py --model guided`.

The same network (train/src/model/blind_spot.rs and guided.rs, docs/denoising.md):
per direction a blind U-Net over the target turned four ways (every 3x3 convolution and
pooling after a one-row shift down, 2x2 transposed convolutions up, a last shift), a plain
encoder over the guide added at every scale, the four views turned back and fused with the
guide's full-resolution features by 1x1 convolutions.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

SLOPE = 0.1


def shift_down(x):
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def rotate(x, k):
    return torch.rot90(x, k, dims=(2, 3))


def conv3(cin, cout):
    return nn.Conv2d(cin, cout, 3, padding=1)


class BlindUNet(nn.Module):
    def __init__(self, c, depth, guided):
        super().__init__()
        self.stem = nn.ModuleList([conv3(1, c), conv3(c, c)])
        self.levels = nn.ModuleList(conv3(c, c) for _ in range(depth))
        self.ups = nn.ModuleList()
        for k in range(depth):
            below = c if k == 0 else 2 * c
            self.ups.append(nn.ModuleList([
                nn.ConvTranspose2d(below, below, 2, stride=2),
                conv3(below + c, 2 * c),
                conv3(2 * c, 2 * c),
            ]))
        self.guided = guided
        if guided:
            self.gstem = nn.ModuleList([conv3(1, c), conv3(c, c)])
            self.glevels = nn.ModuleList(conv3(c, c) for _ in range(depth))

    @staticmethod
    def blind(conv, x):
        return F.leaky_relu(conv(shift_down(x)), SLOPE)

    @staticmethod
    def open(conv, x):
        return F.leaky_relu(conv(x), SLOPE)

    def forward(self, x, g):
        h = self.blind(self.stem[1], self.blind(self.stem[0], x))
        if self.guided:
            g = self.open(self.gstem[1], self.open(self.gstem[0], g))
            h = h + g
        skips = [h]
        for l, conv in enumerate(self.levels):
            h = self.blind(conv, F.max_pool2d(shift_down(h), 2))
            if self.guided:
                g = self.open(self.glevels[l], F.avg_pool2d(g, 2))
                h = h + g
            if l + 1 < len(self.levels):
                skips.append(h)
        for up, conv1, conv2 in self.ups:
            h = torch.cat([up(h), skips.pop()], 1)
            h = self.blind(conv2, self.blind(conv1, h))
        return shift_down(h)


class GuidedDenoiser(nn.Module):
    def __init__(self, c, depth):
        super().__init__()
        self.unet = BlindUNet(c, depth, True)
        views = 4 * 2 * c
        self.guide_stem = nn.ModuleList([conv3(1, c), conv3(c, c)])
        self.fuse = nn.ModuleList([
            nn.Conv2d(views + c, views, 1),
            nn.Conv2d(views, views // 4, 1),
            nn.Conv2d(views // 4, 1, 1),
        ])

    def forward(self, x, g):
        n = x.shape[0]
        stack = lambda t: torch.cat([rotate(t, k) for k in range(4)], 0)
        out = self.unet(stack(x), stack(g))
        parts = [rotate(out[k * n:(k + 1) * n], -k) for k in range(4)]
        for conv in self.guide_stem:
            g = F.leaky_relu(conv(g), SLOPE)
        h = torch.cat(parts + [g], 1)
        for i, conv in enumerate(self.fuse):
            h = conv(h)
            if i + 1 < len(self.fuse):
                h = F.leaky_relu(h, SLOPE)
        return h
