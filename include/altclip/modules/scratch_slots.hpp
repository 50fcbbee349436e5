// The model's scratch slots: which per-call buffer (kernels::Scratch) each use site of the
// modules takes. Model state, so it lives with the modules, not with the kernels.
#pragma once

namespace altclip::detail {

/// Slots of the model code (two buffers live at the same time never share one).
enum ScratchSlot : int { kSlotQ, kSlotK, kSlotV, kSlotCtx, kSlotA, kSlotB, kSlotInter };

}  // namespace altclip::detail
