package hostprep

func preflightPhase() Phase  { return Phase{Name: PhasePreflight} }
func cniPhase() Phase        { return Phase{Name: PhaseCNI} }
func pkiPhase() Phase        { return Phase{Name: PhasePKI} }
func containerdPhase() Phase { return Phase{Name: PhaseContainerd} }
func unitsPhase() Phase      { return Phase{Name: PhaseUnits} }
func imagesPhase() Phase     { return Phase{Name: PhaseImages} }
func staticPodsPhase() Phase { return Phase{Name: PhaseStaticPods} }
