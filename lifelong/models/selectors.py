"""Stage selectors: which training experience a sample (or a token) most likely comes from,
from a frozen feature space, without storing samples (docs/task_inference.md).

A selector scores the experiences it has seen: ``scores(x, ...) -> (..., E)``, higher is
likelier, ``-inf`` for an experience it knows nothing of. ``GrowingExperts`` routes each
sample to the stage of its best-scoring experience when no task label may be used.

- ``GaussianSelector`` (streaming linear discriminant analysis, Hayes & Kanan 2020; as in
  FeCAM, Goswami et al. 2023): a mean per experience (or per class of an experience) and
  one covariance shared by all, shrunk toward a scaled identity, accumulated from
  sufficient statistics in float64; Mahalanobis distance picks the experience. Memory
  O(K·D + D²) for K components of width D (optionally random ReLU features, RanPAC).
- ``ByteBigramSelector`` (``byte_selector``): for byte language models, each experience's
  byte and byte-pair counts, a causal naive-Bayes language identifier.
- ``ByteShapeSelector`` (``shape_selector``): the same identifier at order n over the bytes'
  shapes (digits, lower- and upper-case letters each one symbol).
- ``KeyAffinitySelector`` (as L2P, Wang et al. 2022, matches a frozen query against learned
  keys): the experience whose stage's product keys score highest against the frozen query,
  the sum over heads of the top-k scores among that stage's own experts. No memory.
"""

import torch
from torch import Tensor, nn

from ..checks import fraction, non_negative_int, one_of


class GaussianSelector(nn.Module):
    """Gaussian components of the features, a mean each and one covariance shared by all,
    and the experience of the likeliest ones.

    A component is an experience, or, given labels, one class of an experience (streaming
    LDA proper: an experience of two digits is two blobs, not one). An experience's score
    is the log-likelihood of its mixture, ``logsumexp`` over its components weighted by
    their counts.

    Args:
        dim: input width.
        shrinkage: α in ``Σ' = (1-α)·Σ + α·(tr Σ / D)·I``, 0 < α < 1: the pooled covariance
            of a few hundred samples in many dimensions is near singular, and its inverse
            would trust noise directions.
        per_class: one component per (experience, class) when ``update`` gets labels.
        random_features: D > 0 maps the input through a fixed random projection and a ReLU,
            ``max(0, x W)`` with W (dim, D) ~ N(0, 1/dim), before the Gaussians (RanPAC,
            McDonnell et al. 2023): classes that are not linearly separable in the input
            become more so, at O(D²) memory. 0: the input itself.
        seed: of the random projection.
    """

    def __init__(
        self,
        dim: int,
        *,
        shrinkage: float = 0.1,
        per_class: bool = True,
        random_features: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.shrinkage = fraction("shrinkage", shrinkage)
        self.per_class = per_class
        width = non_negative_int("random_features", random_features) or dim
        self.dim, self.width = dim, width
        if random_features:
            gen = torch.Generator().manual_seed(seed)
            projection = torch.randn(dim, width, generator=gen) / dim**0.5
            self.register_buffer("projection", projection)  # (dim, D)
        else:
            self.projection = None
        self.register_buffer("experience", torch.zeros(0, dtype=torch.long))  # (K,)
        self.register_buffer("label", torch.zeros(0, dtype=torch.long))  # (K,), -1: any
        self.register_buffer("counts", torch.zeros(0, dtype=torch.float64))  # (K,)
        self.register_buffer("sums", torch.zeros(0, width, dtype=torch.float64))  # (K, D)
        self.register_buffer("second", torch.zeros(width, width, dtype=torch.float64))  # Σ f fᵀ
        self._cache: tuple | None = None  # (key, weight (D, K), bias (K,))

    def features(self, x: Tensor) -> Tensor:
        """(..., dim) -> (..., D)."""
        x = x.float()
        return x if self.projection is None else torch.relu(x @ self.projection)

    @torch.no_grad()
    def update(self, experience: int, x: Tensor, labels: Tensor | None = None) -> None:
        """Add inputs (..., dim) of ``experience`` (and their class labels (...), used when
        ``per_class``) to the statistics."""
        f = self.features(x).reshape(-1, self.width).to(self.second)  # (N, D) float64
        per_class = self.per_class and labels is not None and labels.numel() == f.shape[0]
        if per_class:
            labels = labels.reshape(-1).to(f.device)
        else:
            labels = torch.full((f.shape[0],), -1, dtype=torch.long, device=f.device)
        for c in labels.unique().tolist():
            rows = f[labels == c]
            k = self._component(experience, int(c))
            self.counts[k] += rows.shape[0]
            self.sums[k] += rows.sum(0)
        self.second += f.T @ f
        self._cache = None

    def _component(self, experience: int, label: int) -> int:
        found = ((self.experience == experience) & (self.label == label)).nonzero()
        if found.numel():
            return int(found[0])
        self.experience = torch.cat([self.experience, self.experience.new_tensor([experience])])
        self.label = torch.cat([self.label, self.label.new_tensor([label])])
        self.counts = torch.cat([self.counts, self.counts.new_zeros(1)])
        self.sums = torch.cat([self.sums, self.sums.new_zeros(1, self.width)])
        return self.counts.numel() - 1

    def discriminant(self) -> tuple[Tensor, Tensor]:
        """(W (D, K), b (K,)), float32: ``f @ W + b`` is each component's Gaussian
        log-likelihood of features f up to a term common to all, ``μ_kᵀ P f - ½ μ_kᵀ P μ_k``
        (P the precision of the shrunk pooled covariance), plus the component's log weight
        within its experience, ``log(n_k / n_e)``. Solved in float64 once per change of
        the statistics; scored in float32 (the argmax is all that is used)."""
        key = (self.counts.numel(), float(self.counts.sum()), self.counts.device)
        if self._cache is None or self._cache[0] != key:
            means = self.sums / self.counts[:, None]  # (K, D)
            n, k = float(self.counts.sum()), self.counts.numel()
            scatter = self.second - (self.counts[:, None] * means).T @ means  # within
            cov = scatter / max(n - k, 1.0)
            a = self.shrinkage
            eye = torch.eye(self.width, dtype=cov.dtype, device=cov.device)
            precision = torch.linalg.inv((1 - a) * cov + a * cov.trace() / self.width * eye)
            weight = precision @ means.T  # (D, K)
            bias = -0.5 * (means @ precision * means).sum(-1)  # (K,)
            total = torch.zeros(int(self.experience.max()) + 1, dtype=cov.dtype, device=cov.device)
            total.index_add_(0, self.experience, self.counts)
            bias = bias + (self.counts / total[self.experience]).log()
            self._cache = (key, weight.float(), bias.float())
        return self._cache[1:]

    def scores(self, x: Tensor, **context) -> Tensor:
        """(..., dim) inputs -> (..., E) log-likelihood of each experience's mixture
        (-inf for an experience without statistics)."""
        weight, bias = self.discriminant()
        lead = x.shape[:-1]
        per_component = (self.features(x) @ weight + bias).reshape(-1, bias.numel())  # (M, K)
        # logsumexp over each experience's own components, O(M·K) (not M·K·E): the max
        # per experience, then the sum of exp below it.
        m, experiences = per_component.shape[0], int(self.experience.max()) + 1
        owner = self.experience.expand(m, -1)  # (M, K)
        top = per_component.new_full((m, experiences), float("-inf"))
        top = top.scatter_reduce(1, owner, per_component, "amax")
        below = (per_component - top.gather(1, owner)).exp()
        total = per_component.new_zeros(m, experiences).index_add_(1, self.experience, below)
        return (top + total.log()).reshape(*lead, experiences)

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The statistics change shape as components are added: take the saved ones.
        for name in ("experience", "label", "counts", "sums"):
            if prefix + name in state_dict:
                setattr(self, name, state_dict[prefix + name].clone())
        self._cache = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class KeyAffinitySelector(nn.Module):
    """Scores experience e by how well the stage it trained matches the frozen query: for
    each head, the sum of the top-k scores ``q·k_i`` over the experts that stage added,
    summed over heads. Needs a product-key layer (``PEER``, ``PKM``) whose query network is
    frozen after the first experience (``growth.freeze_query``)."""

    def update(self, experience: int, x: Tensor, labels: Tensor | None = None) -> None:
        """Nothing to keep: the keys are the memory."""

    @torch.no_grad()
    def scores(self, x: Tensor, *, layer: nn.Module, stage_of: Tensor, **context) -> Tensor:
        """(..., d) layer inputs -> (..., E); ``stage_of`` (E,) the stage each experience
        trained (-1: none)."""
        lead = x.shape[:-1]
        q = layer.queries(x.reshape(-1, layer.dim))  # (M, h, dk)
        bounds = [0, *layer.stage_bounds]
        per_stage = []
        for s in range(layer.num_stages):
            keys = layer.expert_keys(stage=s)[bounds[s] : bounds[s + 1]]  # (n_s, dk)
            top = (q @ keys.T).topk(min(layer.topk, keys.shape[0]), dim=-1).values  # (M, h, k)
            per_stage.append(top.sum((-1, -2)))  # (M,)
        by_stage = torch.stack(per_stage, -1)  # (M, S)
        out = by_stage[:, stage_of.clamp(min=0)]  # (M, E)
        out = out.masked_fill(stage_of < 0, float("-inf"))
        return out.reshape(*lead, -1)

    def nbytes(self) -> int:
        return 0


SELECTORS = ("gaussian", "key_affinity", "byte_bigram", "byte_shape")


def build_selector(name: str, *, dim: int, order: int = 7, **gaussian) -> nn.Module:
    """The selector called ``name`` for inputs of width ``dim``; ``order``: byte_shape's
    n-gram order; ``gaussian``: the keyword arguments of ``GaussianSelector``."""
    from .byte_selector import ByteBigramSelector
    from .shape_selector import ByteShapeSelector

    one_of("selector", name, SELECTORS)
    if name == "gaussian":
        return GaussianSelector(dim, **gaussian)
    if name == "byte_shape":
        return ByteShapeSelector(order=order)
    return KeyAffinitySelector() if name == "key_affinity" else ByteBigramSelector()
