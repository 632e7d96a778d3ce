//! Compiles a [`SegmentRule`](super::SegmentRule) into a parameterised SQL predicate.
