package mailcopy

import "strings"

// reportText is the wording of the report in one language. Format verbs follow
// the English text's order, so that every language takes the same arguments.
type reportText struct {
	subjectStopped, subjectDryRun, subjectComplete, subjectPartial string

	title                                   string
	source, destination, started, duration  string
	outcome                                 string
	outcomeStopped, outcomeComplete         string
	outcomeFailed, outcomeFolders           string
	totals                                  string
	total, copied, present, failed, skipped string
	dataTotal, dataCopied                   string

	folders      string
	folderHeader []string // Source, Destination, Total, Copied, Present, Failed, Skipped, Note
	created      string
	archiveOnly  string
	archiveLine  string

	renames, collisions, collisionLine, folderSkips string
	notCopied, skippedMessages, altered             string
	issueHeader                                     []string // Folder, UID, Size, Reason
	more                                            string
}

// reportTexts are the report's languages; see ReportLanguage.
var reportTexts = map[string]*reportText{
	"en": {
		subjectStopped:  "imapcopy: copy from %s stopped before the end",
		subjectDryRun:   "imapcopy dry run from %s: %s messages to copy",
		subjectComplete: "imapcopy: copy from %s complete (%s messages copied)",
		subjectPartial:  "imapcopy: copy from %s finished, %s messages not copied",
		title:           "imapcopy report",
		source:          "Source", destination: "Destination", started: "Started", duration: "Duration",
		outcome:         "Outcome",
		outcomeStopped:  "stopped before the end: %s",
		outcomeComplete: "complete: every message in scope is on the destination",
		outcomeFailed:   "%s message(s) could not be copied; they are listed below",
		outcomeFolders:  "some folders could not be copied; they are listed below",
		totals:          "Totals",
		total:           "messages in the source", copied: "copied", present: "already on the destination",
		failed: "failed", skipped: "skipped (too large)", dataTotal: "data in the source", dataCopied: "data copied",
		folders:      "Folders",
		folderHeader: []string{"Source", "Destination", "Total", "Copied", "Present", "Failed", "Skipped", "Note"},
		created:      "created", archiveOnly: "archived mail only",
		archiveLine:     "%s → %s: %s archived messages (messages only in All Mail)",
		renames:         "Renamed folders (the destination cannot hold the source name)",
		collisions:      "Folder name collisions (not merged)",
		collisionLine:   "%q -> %q (%q is taken by %q)",
		folderSkips:     "Folders not copied",
		notCopied:       "Messages not copied",
		skippedMessages: "Messages skipped",
		altered:         "Messages copied with a difference",
		issueHeader:     []string{"Folder", "UID", "Size", "Reason"},
		more:            "... and %s more",
	},
	"fr": {
		subjectStopped:  "imapcopy : copie depuis %s arrêtée avant la fin",
		subjectDryRun:   "imapcopy, essai à blanc depuis %s : %s messages à copier",
		subjectComplete: "imapcopy : copie depuis %s terminée (%s messages copiés)",
		subjectPartial:  "imapcopy : copie depuis %s terminée, %s messages non copiés",
		title:           "Rapport imapcopy",
		source:          "Source", destination: "Destination", started: "Début", duration: "Durée",
		outcome:         "Résultat",
		outcomeStopped:  "arrêtée avant la fin : %s",
		outcomeComplete: "terminée : tous les messages concernés sont sur la destination",
		outcomeFailed:   "%s message(s) n'ont pas pu être copiés ; ils sont listés ci-dessous",
		outcomeFolders:  "certains dossiers n'ont pas pu être copiés ; ils sont listés ci-dessous",
		totals:          "Totaux",
		total:           "messages dans la source", copied: "copiés", present: "déjà sur la destination",
		failed: "en échec", skipped: "ignorés (trop gros)", dataTotal: "données dans la source", dataCopied: "données copiées",
		folders:      "Dossiers",
		folderHeader: []string{"Source", "Destination", "Total", "Copiés", "Présents", "Échecs", "Ignorés", "Note"},
		created:      "créé", archiveOnly: "courrier archivé seulement",
		archiveLine:     "%s → %s : %s messages archivés (présents seulement dans Tous les messages)",
		renames:         "Dossiers renommés (la destination ne peut pas porter le nom de la source)",
		collisions:      "Noms de dossiers en conflit (non fusionnés)",
		collisionLine:   "%q -> %q (%q est déjà pris par %q)",
		folderSkips:     "Dossiers non copiés",
		notCopied:       "Messages non copiés",
		skippedMessages: "Messages ignorés",
		altered:         "Messages copiés avec une différence",
		issueHeader:     []string{"Dossier", "UID", "Taille", "Raison"},
		more:            "... et %s de plus",
	},
	"pl": {
		subjectStopped:  "imapcopy: kopiowanie z %s przerwane przed końcem",
		subjectDryRun:   "imapcopy, próba z %s: %s wiadomości do skopiowania",
		subjectComplete: "imapcopy: kopiowanie z %s zakończone (skopiowano %s wiadomości)",
		subjectPartial:  "imapcopy: kopiowanie z %s zakończone, nie skopiowano %s wiadomości",
		title:           "Raport imapcopy",
		source:          "Źródło", destination: "Cel", started: "Początek", duration: "Czas trwania",
		outcome:         "Wynik",
		outcomeStopped:  "przerwane przed końcem: %s",
		outcomeComplete: "zakończone: wszystkie wiadomości są na koncie docelowym",
		outcomeFailed:   "nie udało się skopiować %s wiadomości; lista poniżej",
		outcomeFolders:  "nie udało się skopiować niektórych folderów; lista poniżej",
		totals:          "Podsumowanie",
		total:           "wiadomości w źródle", copied: "skopiowane", present: "już na koncie docelowym",
		failed: "nieudane", skipped: "pominięte (za duże)", dataTotal: "dane w źródle", dataCopied: "skopiowane dane",
		folders:      "Foldery",
		folderHeader: []string{"Źródło", "Cel", "Razem", "Skopiowane", "Obecne", "Nieudane", "Pominięte", "Uwagi"},
		created:      "utworzony", archiveOnly: "tylko archiwum",
		archiveLine:     "%s → %s: %s zarchiwizowanych wiadomości (tylko we Wszystkich wiadomościach)",
		renames:         "Foldery o zmienionej nazwie (konto docelowe nie przyjmuje nazwy źródłowej)",
		collisions:      "Kolizje nazw folderów (nie połączono)",
		collisionLine:   "%q -> %q (%q jest zajęta przez %q)",
		folderSkips:     "Foldery nieskopiowane",
		notCopied:       "Wiadomości nieskopiowane",
		skippedMessages: "Wiadomości pominięte",
		altered:         "Wiadomości skopiowane z różnicą",
		issueHeader:     []string{"Folder", "UID", "Rozmiar", "Powód"},
		more:            "... i %s więcej",
	},
}

// ReportLanguages are the languages the report is written in.
var ReportLanguages = []string{"en", "fr", "pl"}

// ReportLanguage returns the report language a BCP 47 tag asks for ("fr-FR" and
// "FR" give "fr"; "" gives "en"), and false when the report has no such language.
func ReportLanguage(tag string) (string, bool) {
	base, _, _ := strings.Cut(strings.ReplaceAll(strings.TrimSpace(tag), "_", "-"), "-")
	base = strings.ToLower(base)
	if base == "" {
		return "en", true
	}
	_, ok := reportTexts[base]
	return base, ok
}

// textFor returns the wording for a Config.Language; English when unknown.
func textFor(lang string) *reportText {
	if l, ok := ReportLanguage(lang); ok {
		return reportTexts[l]
	}
	return reportTexts["en"]
}
